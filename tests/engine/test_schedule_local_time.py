"""Local-time helpers: the server's time zone and wall-clock readings around DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from m365vault.engine.local_time import first_instant_at_or_after, load_time_zone, pieces

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_named_zone_is_loaded() -> None:
    assert load_time_zone("America/New_York") == ZoneInfo("America/New_York")


@pytest.mark.parametrize("name", ["Europe/Berln", "", "../etc/passwd", "Mars/Olympus"])
def test_an_unknown_zone_is_refused_clearly(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown time zone .* use an IANA name"):
        load_time_zone(name)


def test_the_host_zone_comes_from_tz_then_localtime_then_utc(tmp_path: Path) -> None:
    assert load_time_zone(None, environ={"TZ": ":Europe/Berlin"}, localtime=tmp_path / "none") == BERLIN
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Asia/Kolkata")
    assert load_time_zone(None, environ={}, localtime=link) == ZoneInfo("Asia/Kolkata")
    assert load_time_zone(None, environ={}, localtime=tmp_path / "missing") == ZoneInfo("UTC")


def test_pieces_split_exactly_at_the_transitions() -> None:
    start = datetime(2026, 3, 28, 12, 17, 3, 5, tzinfo=UTC)  # odd fraction: cuts stay on the second
    found = list(pieces(BERLIN, start, start + timedelta(days=2)))
    assert found[0].start == start and found[-1].end == start + timedelta(days=2)
    assert all(a.end == b.start for a, b in itertools.pairwise(found))
    cuts = [piece.start for piece in found if piece.offset != found[0].offset][:1]
    assert cuts == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("day", "at", "expected"),
    [
        (date(2026, 3, 29), time(2, 0), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # gap start
        (date(2026, 3, 29), time(2, 59, 59), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # gap end
        (date(2026, 3, 29), time(3, 0, 1), datetime(2026, 3, 29, 1, 0, 1, tzinfo=UTC)),
        (date(2026, 10, 25), time(2, 0), datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),  # fold, first pass
        (date(2026, 10, 25), time(3, 0), datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    ],
)
def test_first_instant_at_or_after(day: date, at: time, expected: datetime) -> None:
    assert first_instant_at_or_after(BERLIN, day, at) == expected
