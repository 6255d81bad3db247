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
# Headers are read before the From_ line is written; a header block past this is not mail.
_MAX_HEAD = 1024 * 1024
# A line longer than this is passed on in pieces once its start is known not to need quoting.
_MAX_LINE = 64 * 1024


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


def _lines(data: bytes) -> list[bytes]:
    """Split on LF only (a lone CR is not a line end in mbox), keeping the line ends."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class _FromQuoter:
    """Adds the `>` of mboxrd to lines that match `>*From `, across chunk boundaries."""

    def __init__(self) -> None:
        self._line = b""  # the start of the current line, while it may still need quoting
        self._decided = False  # the current line's start has been written out
        self._last = b"\n"

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for piece in _lines(data):
            if self._decided:
                out += piece
            else:
                self._line += piece
                if piece.endswith(b"\n") or self._settled():
                    out += self._quoted(self._line)
                    self._line, self._decided = b"", True
            if piece.endswith(b"\n"):
                self._decided = False
        if out:
            self._last = bytes(out[-1:])
        return bytes(out)

    def finish(self) -> bytes:
        tail = self._quoted(self._line) if self._line else b""
        if tail:
            self._last = tail[-1:]
        # Every message ends with a newline; the caller adds the blank separator line.
        return tail + (b"" if self._last == b"\n" else b"\n")

    def _settled(self) -> bool:
        # Long enough to know: either it already matched, or it has a byte that rules it out.
        stripped = self._line.lstrip(b">")
        return len(self._line) > _MAX_LINE and (len(stripped) >= 5 or not b"From ".startswith(stripped))

    @staticmethod
    def _quoted(line: bytes) -> bytes:
        return b">" + line if _FROM_LINE.match(line) else line
