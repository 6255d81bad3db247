"""savetoMsg: the .msg output read back by an independent parser (extract-msg)."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import extract_msg
import pytest

from m365vault.restore.errors import ItemTooLarge, NothingToSave
from m365vault.restore.formats.msg import MsgSource, save_many_to_msg, save_to_msg
from tests.restore_io.conftest import ATTACHMENT_BYTES, IMAGE_BYTES, chunked, collect, read_msg, sample_mail


async def test_msg_carries_headers_bodies_recipients_and_attachments() -> None:
    mime = sample_mail()
    received = datetime(2026, 3, 3, 8, 16, 30, tzinfo=UTC)
    download = await save_to_msg("Quarterly report – ünïcode", lambda: chunked(mime, 1000), received=received)
    assert download.filename == "Quarterly report – ünïcode.msg"
    assert download.media_type == "application/vnd.ms-outlook"
    content = await collect(download.chunks)
    assert content[:8] == bytes.fromhex("d0cf11e0a1b11ae1")  # a compound file
    assert download.size == len(content)

    parsed = read_msg(content)
    assert parsed.subject == "Quarterly report – ünïcode"
    assert parsed.sender == "Alice Sender <alice@contoso.example>"
    assert parsed.to == "Bob One <bob@contoso.example>; carol@contoso.example"
    assert parsed.cc == "Dave <dave@contoso.example>"
    assert parsed.bcc == "eve@contoso.example"
    assert parsed.messageId == "<report-1@contoso.example>"
    assert parsed.date == datetime(2026, 3, 3, 8, 15, tzinfo=UTC)  # sent time, in UTC
    assert "the numbers are attached." in (parsed.body or "")
    assert b"Hello <b>Bob</b>" in (parsed.htmlBody or b"")
    assert parsed.header["X-Custom-Header"] == "kept in transport headers"

    by_name = {attachment.longFilename: attachment for attachment in parsed.attachments}
    assert by_name["numbers.bin"].data == ATTACHMENT_BYTES
    inline = [a for a in parsed.attachments if a.cid == "logo@contoso"]
    assert inline and inline[0].data == IMAGE_BYTES
    embedded = [a for a in parsed.attachments if a.type.name == "MSG"]
    assert len(embedded) == 1
    inner = cast(extract_msg.Message, embedded[0].data)
    assert inner.subject == "The forwarded one"
    assert "Inner body." in (inner.body or "")
    parsed.close()


async def test_plain_text_only_mail_without_sender_still_parses() -> None:
    mime = b"Subject: bare\r\nTo: x@example.com\r\n\r\nJust text.\r\n"
    download = await save_to_msg(None, lambda: [mime])
    assert download.filename == "message.msg"
    parsed = read_msg(await collect(download.chunks))
    assert parsed.subject == "bare"
    assert (parsed.body or "").strip() == "Just text."
    assert not parsed.attachments


async def test_item_over_the_limit_is_refused_before_conversion() -> None:
    with pytest.raises(ItemTooLarge, match="larger than the 1000 bytes"):
        await save_to_msg("big", lambda: chunked(sample_mail(), 300), max_item_bytes=1000)


async def test_several_items_arrive_as_a_zip_of_msgs_with_unique_names() -> None:
    sources = [
        MsgSource("Same subject", lambda: [sample_mail("Same subject")]),
        MsgSource("Same subject", lambda: [sample_mail("Same subject")]),
        MsgSource("Other: one?", lambda: [sample_mail("Other: one?")]),
    ]
    download = save_many_to_msg(sources, archive_name="items.zip")
    assert download.media_type == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await collect(download.chunks)))
    assert archive.testzip() is None
    assert archive.namelist() == ["Same subject.msg", "Same subject (2).msg", "Other_ one_.msg"]
    subjects = [read_msg(archive.read(name)).subject for name in archive.namelist()]
    assert subjects == ["Same subject", "Same subject", "Other: one?"]


def test_nothing_selected_is_a_clear_error() -> None:
    with pytest.raises(NothingToSave):
        save_many_to_msg([])


async def test_text_attachments_keep_their_exact_bytes_in_any_charset() -> None:
    latin = "Prüfbericht für Köln\r\nZeile 2".encode("latin-1")
    mime = (
        b"Subject: charsets\r\nFrom: a@contoso.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n--b\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b'Content-Disposition: attachment; filename="k.txt"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + latin + b"\r\n--b--\r\n"  # that CRLF is the boundary's
    )
    parsed = read_msg(await collect((await save_to_msg("charsets", lambda: [mime])).chunks))
    [attachment] = parsed.attachments
    assert attachment.longFilename == "k.txt"
    assert attachment.data == latin


async def test_a_mail_that_is_one_bare_attachment_keeps_it() -> None:
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 4
    mime = (
        b"Subject: scan\r\nFrom: scanner@contoso.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(pdf).replace(b"\n", b"\r\n")
    )
    download = await save_to_msg("scan", bytes_opener(mime))
    parsed = read_msg(await collect(download.chunks))
    [attachment] = parsed.attachments
    assert (attachment.longFilename, attachment.data) == ("scan.pdf", pdf)


def bytes_opener(content: bytes) -> Callable[[], bytes]:
    return lambda: content  # one buffer, not a list of chunks
