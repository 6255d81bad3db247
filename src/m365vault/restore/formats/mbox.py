"""`exportToMbox` (our extension): many messages streamed as one mboxrd file.

mboxrd: each message starts with a `From <sender> <asctime>` line, every body line matching
`>*From ` gets one more `>` (so readers can undo it exactly), lines end in LF and a blank line
closes each message. The sender and date of the From_ line come from the caller when known,
otherwise from the message's own headers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import parseaddr, parsedate_to_datetime

from m365vault.restore.formats.download import Download, Opener, iterate
from m365vault.restore.formats.names import safe_filename

MBOX_MEDIA_TYPE = "application/mbox"
_FROM_LINE = re.compile(rb">*From ")
_FROM_LINES = re.compile(rb"^>*From ", re.MULTILINE)
# Headers are read before the From_ line is written; a header block past this is not mail.
_MAX_HEAD = 1024 * 1024


@dataclass(frozen=True)
class MboxMessage:
    """One message to export: its MIME, and optionally the envelope sender and arrival time."""

    open: Opener
    sender: str | None = None
    received: datetime | None = None


def export_to_mbox(
    messages: Iterable[MboxMessage] | AsyncIterable[MboxMessage], name: str = "export"
) -> Download:
    return Download(safe_filename(name, ".mbox", fallback="export"), MBOX_MEDIA_TYPE, stream_mbox(messages))


async def stream_mbox(messages: Iterable[MboxMessage] | AsyncIterable[MboxMessage]) -> AsyncIterator[bytes]:
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            async for chunk in _one(message):
                yield chunk
    else:
        for message in messages:
            async for chunk in _one(message):
                yield chunk


async def _one(message: MboxMessage) -> AsyncIterator[bytes]:
    chunks = _lf_lines(iterate(message.open()))
    head = bytearray()
    pending: list[bytes] = []
    # Hold back the header block (bounded) to learn the sender and date for the From_ line.
    async for chunk in chunks:
        pending.append(chunk)
        head += chunk
        if b"\n\n" in head or head.startswith(b"\n") or len(head) > _MAX_HEAD:
            break
    yield _from_line(bytes(head), message)
    quoter = _FromQuoter()
    for chunk in pending:
        yield quoter.feed(chunk)
    async for chunk in chunks:
        if out := quoter.feed(chunk):
            yield out
    yield quoter.finish() + b"\n"


def _from_line(head: bytes, message: MboxMessage) -> bytes:
    headers = BytesHeaderParser().parsebytes(head.split(b"\n\n", 1)[0] + b"\n\n")
    sender = message.sender or parseaddr(str(headers.get("Return-Path", "") or headers.get("From", "")))[1]
    sender = "".join(sender.split()) or "MAILER-DAEMON"
    when = message.received
    if when is None:
        try:
            when = parsedate_to_datetime(str(headers.get("Date", "")))
        except (TypeError, ValueError, IndexError):
            when = None
    when = (when or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC)
    stamp = when.strftime("%a %b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y")
    return f"From {sender} {stamp}\n".encode("ascii", "replace")


async def _lf_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """CRLF to LF (mbox's line end), even when a CR and its LF arrive in different chunks."""
    carry = b""
    async for chunk in chunks:
        data = carry + chunk
        carry = b"\r" if data.endswith(b"\r") else b""
        if carry:
            data = data[:-1]
        if data := data.replace(b"\r\n", b"\n"):
            yield data
    if carry:
        yield carry


class _FromQuoter:
    """Adds the `>` of mboxrd to lines that match `>*From `, across chunk boundaries.

    Whole lines go through one regular expression per chunk; only a line's undecided start (it
    may still become `>*From `) is held back until a later byte settles it.
    """

    def __init__(self) -> None:
        self._start = b""  # the start of the current line, while it may still need quoting
        self._mid_line = False  # the current line's start is out; pass bytes on to its end
        self._last = b"\n"

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        if self._mid_line:
            end = data.find(b"\n")
            if end < 0:
                return self._emitted(data)
            out += data[: end + 1]
            data, self._mid_line = data[end + 1 :], False
        data, self._start = self._start + data, b""
        cut = data.rfind(b"\n") + 1
        lines = data[:cut]
        # base64 has no space, so most chunks skip the expression entirely.
        out += _FROM_LINES.sub(b">\\g<0>", lines) if b"From " in lines else lines
        rest = data[cut:]
        if _settled(rest):
            out += _quoted(rest)
            self._mid_line = True
        else:
            self._start = rest
        return self._emitted(bytes(out))

    def finish(self) -> bytes:
        tail = self._emitted(_quoted(self._start)) if self._start else b""
        # Every message ends with a newline; the caller adds the blank separator line.
        return tail + (b"" if self._last == b"\n" else b"\n")

    def _emitted(self, out: bytes) -> bytes:
        if out:
            self._last = out[-1:]
        return out


def _settled(start: bytes) -> bool:
    """Whether a line's first bytes already tell if it is `>*From ` (or can no longer be)."""
    stripped = start.lstrip(b">")
    return len(stripped) >= 5 or not b"From ".startswith(stripped)


def _quoted(line: bytes) -> bytes:
    return b">" + line if _FROM_LINE.match(line) else line
