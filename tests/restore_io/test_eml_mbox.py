"""saveToEml and exportToMbox, read back with the standard library's email and mailbox parsers."""

from __future__ import annotations

import asyncio
import io
import mailbox
import re
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m365vault.restore.errors import NothingToSave
from m365vault.restore.formats.download import MailItem, content_disposition
from m365vault.restore.formats.eml import save_many_to_eml, save_to_eml
from m365vault.restore.formats.mbox import MboxMessage, export_to_mbox
from m365vault.restore.formats.names import UniqueNames, safe_filename
from m365vault.restore.formats.pst import PST_EXPORT_STATUS, PST_EXPORT_UNAVAILABLE
from tests.restore_io.conftest import ATTACHMENT_BYTES, chunked, collect, sample_mail


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Budget/Plan <final>?", "Re_ Budget_Plan _final__.eml"),
        ("  ..hidden. ", "hidden.eml"),
        ("CON", "_CON.eml"),
        ("", "message.eml"),
        (None, "message.eml"),
        ("tab\there\r\nnew", "tab here new.eml"),
        ("é" * 300, "é" * 98 + ".eml"),  # 200 bytes of UTF-8 at most
    ],
)
def test_safe_file_names(subject: str | None, expected: str) -> None:
    assert safe_filename(subject, ".eml", fallback="message") == expected


def test_unique_names_and_disposition() -> None:
    names = UniqueNames()
    assert [names.claim(n) for n in ["a.txt", "A.txt", "a.txt", "dir.v2/b"]] == [
        "a.txt",
        "A (2).txt",
        "a (3).txt",
        "dir.v2/b",
    ]
    assert content_disposition('Ré "x".eml') == (
        "attachment; filename=\"R? 'x'.eml\"; filename*=UTF-8''R%C3%A9%20%22x%22.eml"
    )


async def test_eml_is_the_original_mime_byte_for_byte() -> None:
    mime = sample_mail()

    async def from_repository() -> AsyncIterator[bytes]:
        for chunk in chunked(mime, 4096):
            yield chunk

    download = save_to_eml("Quarterly report", from_repository(), size=len(mime))
    assert (download.filename, download.media_type, download.size) == (
        "Quarterly report.eml",
        "message/rfc822",
        len(mime),
    )
    content = await collect(download.chunks)
    assert content == mime
    parsed = message_from_bytes(content, policy=policy.default)
    assert parsed["Subject"] == "Quarterly report – ünïcode"


def _undo_mboxrd(body: bytes) -> bytes:
    return re.sub(rb"(?m)^>(>*From )", rb"\1", body)


async def test_mbox_round_trips_through_the_mailbox_module(tmp_path: Path) -> None:
    first = sample_mail("First")  # CRLF line ends, body lines starting with From and >From
    second = (
        b"From: Zed <zed@example.org>\nSubject: Second\nDate: Wed, 04 Mar 2026 10:00:00 +0000\n"
        b"\nFrom here\nno newline at end"
    )
    third = b"Subject: no sender\r\n\r\nbody\r\n"

    async def messages() -> AsyncIterator[MboxMessage]:
        yield MboxMessage(lambda: chunked(first, 1))  # CR and LF split across chunks everywhere
        yield MboxMessage(lambda: chunked(second, 7))
        yield MboxMessage(
            lambda: [third],
            sender="archive@contoso.example",
            received=datetime(2026, 3, 5, 1, 2, 3, tzinfo=UTC),
        )

    download = export_to_mbox(messages(), "Bob's mailbox")
    assert (download.filename, download.media_type) == ("Bob's mailbox.mbox", "application/mbox")
    path = tmp_path / "out.mbox"
    path.write_bytes(await collect(download.chunks))
    raw = path.read_bytes()
    assert b"\r\n" not in raw
    assert b"\n>From the finance team\n" in raw and b"\n>>From quoted already\n" in raw

    box = mailbox.mbox(path)
    parsed = list(box)
    assert [m["Subject"] for m in parsed] == ["First", "Second", "no sender"]
    assert parsed[0].get_from() == "alice@contoso.example Tue Mar  3 08:15:00 2026"
    assert parsed[1].get_from() == "zed@example.org Wed Mar  4 10:00:00 2026"
    assert parsed[2].get_from() == "archive@contoso.example Thu Mar  5 01:02:03 2026"

    keys = list(box.keys())
    restored = [_undo_mboxrd(box.get_bytes(key)) for key in keys]
    assert restored[0] == first.replace(b"\r\n", b"\n")
    assert restored[1] == second + b"\n"
    assert restored[2] == third.replace(b"\r\n", b"\n")
    attachment = next(p for p in parsed[0].walk() if p.get_filename() == "numbers.bin")
    assert attachment.get_payload(decode=True) == ATTACHMENT_BYTES


async def test_mbox_quotes_a_very_long_from_line_split_over_chunks() -> None:
    long_line = b"From " + b"x" * 200_000 + b"\n"
    mime = b"Subject: long\n\n" + long_line + b"tail\n"
    out = await collect(export_to_mbox([MboxMessage(lambda: chunked(mime, 10_000))]).chunks)
    body = out.split(b"\n\n", 1)[1]
    assert body == b">" + long_line + b"tail\n\n"


def test_pst_notice_names_the_alternatives() -> None:
    assert PST_EXPORT_STATUS == 501
    for alternative in ("exportToMbox", "saveToEml", "savetoMsg"):
        assert alternative in PST_EXPORT_UNAVAILABLE


_LINE = st.sampled_from(
    [b"From x", b">From y", b">>From ", b"From", b"Fro", b">", b"", b"text", b" From z", b"\r"]
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_LINE, max_size=12), cuts=st.lists(st.integers(1, 9), min_size=1, max_size=5))
def test_mboxrd_quoting_undoes_exactly_for_any_chunking(lines: list[bytes], cuts: list[int]) -> None:
    body = b"\n".join(lines)
    mime = b"Subject: p\n\n" + body
    pieces, position, index = [], 0, 0
    while position < len(mime):
        size = cuts[index % len(cuts)]
        pieces.append(mime[position : position + size])
        position, index = position + size, index + 1

    out = asyncio.run(collect(export_to_mbox([MboxMessage(lambda: pieces)]).chunks))
    from_line, rest = out.split(b"\n", 1)
    assert from_line.startswith(b"From MAILER-DAEMON ")
    assert not re.search(rb"(?m)^From ", rest)  # no line a reader could take for a new message
    expected = mime.replace(b"\r\n", b"\n")
    expected += b"\n" if not expected.endswith(b"\n") else b""
    assert _undo_mboxrd(rest) == expected + b"\n"


async def test_several_emls_arrive_as_a_zip_of_original_mime() -> None:
    first, second = sample_mail("One"), sample_mail("Two")
    download = save_many_to_eml(
        [MailItem("One", lambda: [first]), MailItem("One", lambda: chunked(second, 99))]
    )
    archive = zipfile.ZipFile(io.BytesIO(await collect(download.chunks)))
    assert archive.namelist() == ["One.eml", "One (2).eml"]
    assert archive.read("One.eml") == first and archive.read("One (2).eml") == second
    with pytest.raises(NothingToSave):
        save_many_to_eml([])
