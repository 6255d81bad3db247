"""Unit tests of the small pieces: the secret box, point-in-time parsing, action parsing, paths."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from m365vault.api.casing import CaseInsensitivePaths
from m365vault.api.v3.actions import JOB_ACTIONS, parse_action
from m365vault.api.wire import BadInput, parse_point_in_time, timestamp
from m365vault.secretbox import SecretBox, SecretBoxError, load_or_create_key, open_secretbox


def test_secret_box_round_trip_and_binding(tmp_path: Path) -> None:
    box = open_secretbox(tmp_path)
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600
    sealed = box.seal("p@ss", "organization:1:application_secret")
    assert b"p@ss" not in sealed
    assert box.open(sealed, "organization:1:application_secret") == "p@ss"
    assert box.seal("p@ss", "x") != box.seal("p@ss", "x")  # fresh nonce every time
    with pytest.raises(SecretBoxError):
        box.open(sealed, "organization:2:application_secret")  # sealed for another column
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecretBoxError):
        box.open(tampered, "organization:1:application_secret")
    with pytest.raises(SecretBoxError):
        SecretBox(b"\x00" * 32).open(sealed, "organization:1:application_secret")
    assert load_or_create_key(tmp_path) == load_or_create_key(tmp_path)
    assert "key" in repr(box) and str(load_or_create_key(tmp_path)) not in repr(box)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-04-12T10:54:40.2794046Z", datetime(2019, 4, 12, 10, 54, 40, 279404, tzinfo=UTC)),
        ("2019-04-12 10:54:40.279", datetime(2019, 4, 12, 10, 54, 40, 279000, tzinfo=UTC)),
        ("2017.06.26 22:07:39", datetime(2017, 6, 26, 22, 7, 39, tzinfo=UTC)),
        ("2017.6.2 9:07:39", datetime(2017, 6, 2, 9, 7, 39, tzinfo=UTC)),
        ("2019-04-12T12:54:40+02:00", datetime(2019, 4, 12, 10, 54, 40, tzinfo=UTC)),
        ("2019-04-12", datetime(2019, 4, 12, tzinfo=UTC)),
        ("", None),
        (None, None),
    ],
)
def test_point_in_time_formats(text: str | None, expected: datetime | None) -> None:
    assert parse_point_in_time(text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2019-02-30", "12.04.2019", "2019-04-12T25:00:00", "2019-04-12X"]
)
def test_bad_points_in_time(text: str) -> None:
    with pytest.raises(BadInput):
        parse_point_in_time(text)


def test_timestamps_have_seven_digits() -> None:
    assert timestamp(datetime(2019, 2, 4, 16, 49, 22, 852976, tzinfo=UTC)) == "2019-02-04T16:49:22.8529760Z"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.none(), st.floats(allow_nan=False), st.booleans()))
def test_point_in_time_never_fails_otherwise(value: object) -> None:
    with contextlib.suppress(BadInput):  # anything else (TypeError, ValueError...) fails the test
        parse_point_in_time(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["enable", "Explore", "STOP", "x"]), json_values, max_size=2).map(
            lambda v: json.dumps(v).encode()
        ),
    )
)
def test_action_parser_accepts_or_says_why(body: bytes) -> None:
    try:
        action = parse_action(body, JOB_ACTIONS)
    except BadInput as exc:
        assert exc.message
    else:
        assert action.name in JOB_ACTIONS


def test_canonical_paths_keep_parameter_values() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    paths = CaseInsensitivePaths(app, lambda: ["/v3/Jobs/{jobId}", "/v3/Jobs/{jobId}/Action", "/v3/Token"])
    assert paths.canonical("/V3/jobs/AbC-1/ACTION") == "/v3/Jobs/AbC-1/Action"
    assert paths.canonical("/v3/jobs/Action") == "/v3/Jobs/Action"
    assert paths.canonical("/v3/unknown/Thing/") == "/v3/unknown/Thing"
