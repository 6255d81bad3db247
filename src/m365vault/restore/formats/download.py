"""What every output is: a file name, a media type and an async stream of bytes."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from m365vault.restore.errors import ItemTooLarge

# The content of an item or document, as the repository hands it over.
Chunks = AsyncIterable[bytes] | Iterable[bytes] | bytes
# Opens an item's content only when the output reaches it, so a ZIP of a thousand documents holds
# one repository read open at a time.
Opener = Callable[[], Chunks]


@dataclass(frozen=True)
class Download:
    """One output ready to answer an HTTP request with (a 200 with a streamed body)."""

    filename: str
    media_type: str
    chunks: AsyncIterator[bytes]
    size: int | None = None

    @property
    def content_disposition(self) -> str:
        return content_disposition(self.filename)


@dataclass(frozen=True)
class MailItem:
    """One mail item to output: its subject (for the file name), its MIME and when it arrived."""

    subject: str | None
    open: Opener
    received: datetime | None = None


def content_disposition(filename: str) -> str:
    """An `attachment` disposition every client understands (RFC 6266, with an ASCII fallback)."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace('"', "'").replace("\\", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def iterate(chunks: Chunks) -> AsyncIterator[bytes]:
    """Walk sync and async byte streams alike, skipping empty chunks."""
    if isinstance(chunks, bytes | bytearray | memoryview):
        # One buffer handed over whole; iterating it would yield ints, not bytes.
        if chunks:
            yield bytes(chunks)
    elif isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            if chunk:
                yield bytes(chunk)
    else:
        for chunk in chunks:
            if chunk:
                yield bytes(chunk)


async def read_all(chunks: Chunks, limit: int, what: str) -> bytes:
    """Collect a stream into memory, refusing (before reading further) past `limit` bytes."""
    parts: list[bytes] = []
    total = 0
    async for chunk in iterate(chunks):
        total += len(chunk)
        if total > limit:
            raise ItemTooLarge(f"{what} is larger than the {limit} bytes allowed for this output")
        parts.append(chunk)
    return b"".join(parts)
