"""ZIP archives streamed as they are written: never whole in memory, never seeking back.

stream-zip writes each member with a data descriptor and ZIP64 fields (so members and archives
past 4 GiB are fine) and the central directory at the end. It runs here in a thread of each
archive's own, so deflating a large document does not stall the event loop, and pulls member
bytes back through the loop. Members are opened only when the archive reaches them.
"""

from __future__ import annotations

import asyncio
import mimetypes
import stat
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar, cast

from stream_zip import ZIP_64, AsyncMemberFile, MemberFile
from stream_zip import stream_zip as zip_members

from m365vault.restore.errors import NothingToSave
from m365vault.restore.formats.download import Chunks, Download, Opener, iterate
from m365vault.restore.formats.names import UniqueNames, safe_filename, safe_path

ZIP_MEDIA_TYPE = "application/zip"
# zlib's default: most of level 9's ratio at a fraction of its CPU; office files are zips already.
DEFAULT_LEVEL = 6
_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)  # the earliest time a ZIP header can hold


@dataclass(frozen=True)
class ZipFile:
    """A file member at `path` (a `/`-separated path inside the archive)."""

    path: str
    open: Opener
    modified: datetime | None = None


@dataclass(frozen=True)
class ZipFolder:
    """A folder member, so empty folders of a tree survive."""

    path: str
    modified: datetime | None = None


ZipEntry = ZipFile | ZipFolder


async def stream_zip(
    entries: Iterable[ZipEntry] | AsyncIterable[ZipEntry], *, level: int = DEFAULT_LEVEL
) -> AsyncIterator[bytes]:
    """The archive's bytes, chunk by chunk, for an async streaming HTTP response."""

    def compressor() -> zlib._Compress:
        return zlib.compressobj(level=level, wbits=-zlib.MAX_WBITS)

    bridge = _Bridge(asyncio.get_running_loop())
    archive = cast(
        Generator[bytes, None, None],
        zip_members(bridge.members(_members(entries)), get_compressobj=compressor),
    )
    # A thread of the archive's own: it waits on the event loop for member bytes, and parked in
    # the shared default executor it could starve the very reads it waits for (decryption, say).
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zipstream")
    try:
        while (chunk := await asyncio.wrap_future(pool.submit(_next_chunk, archive))) is not None:
            yield chunk
    finally:
        bridge.close()
        pool.submit(archive.close)  # after any call still running, in the same thread
        pool.shutdown(wait=False)


def _next_chunk(archive: Iterator[bytes]) -> bytes | None:
    return next(archive, None)


class _ArchiveClosed(Exception):
    """The consumer went away; stops the writer thread at its next read."""


class _Bridge:
    """Lets the writer thread pull async iterators one item at a time through the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: Future[object] | None = None
        self._closed = False

    def members(self, members: AsyncIterator[AsyncMemberFile]) -> Iterator[MemberFile]:
        for name, modified, mode, method, chunks in self._pull(members):
            yield name, modified, mode, method, self._pull(aiter(chunks))

    def close(self) -> None:
        self._closed = True
        if (waiting := self._waiting) is not None:
            waiting.cancel()

    def _pull(self, iterator: AsyncIterator[_T]) -> Iterator[_T]:
        while True:
            if self._closed:
                raise _ArchiveClosed
            waiting = asyncio.run_coroutine_threadsafe(_next(iterator), self._loop)
            self._waiting = waiting
            try:
                item = waiting.result()
            finally:
                self._waiting = None
            if item is _END:
                return
            yield cast(_T, item)


_T = TypeVar("_T")
_END = object()


async def _next(iterator: AsyncIterator[object]) -> object:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _END


def zip_download(
    entries: Iterable[ZipEntry] | AsyncIterable[ZipEntry], archive_name: str, *, level: int = DEFAULT_LEVEL
) -> Download:
    name = safe_filename(archive_name, fallback="archive")
    return Download(name, ZIP_MEDIA_TYPE, stream_zip(entries, level=level))


@dataclass(frozen=True)
class DocumentSource:
    """A document to save: its path in the tree being saved (`Folder/Sub/report.docx`)."""

    path: str
    open: Opener
    modified: datetime | None = None
    size: int | None = None


def save_documents(
    documents: Sequence[DocumentSource],
    *,
    as_zip: bool = False,
    archive_name: str = "documents.zip",
    folders: Sequence[str] = (),
) -> Download:
    """Documents `save`: one document as the file itself; several, folders or `asZip` as a ZIP."""
    if not documents and not folders:
        raise NothingToSave("there is nothing to save: the selection holds no document")
    if len(documents) == 1 and not folders and not as_zip:
        only = documents[0]
        name = safe_filename(only.path.rsplit("/", 1)[-1], fallback="document")
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Download(name, media_type, iterate(only.open()), only.size)
    names = UniqueNames()
    entries: list[ZipEntry] = [ZipFolder(names.claim(_archive_path(path)) + "/") for path in folders]
    entries += [
        ZipFile(names.claim(_archive_path(document.path)), document.open, document.modified)
        for document in documents
    ]
    return zip_download(entries, archive_name)


def _archive_path(path: str) -> str:
    return safe_path([part for part in path.strip("/").split("/") if part not in ("", ".", "..")])


async def _members(entries: Iterable[ZipEntry] | AsyncIterable[ZipEntry]) -> AsyncIterator[AsyncMemberFile]:
    async for entry in _entries(entries):
        modified = max(entry.modified or _EPOCH, _EPOCH)
        if isinstance(entry, ZipFolder):
            yield entry.path.rstrip("/") + "/", modified, stat.S_IFDIR | 0o755, ZIP_64, _nothing()
        else:
            yield entry.path, modified, stat.S_IFREG | 0o644, ZIP_64, _open(entry.open)


async def _entries(entries: Iterable[ZipEntry] | AsyncIterable[ZipEntry]) -> AsyncIterator[ZipEntry]:
    if isinstance(entries, AsyncIterable):
        async for entry in entries:
            yield entry
    else:
        for entry in entries:
            yield entry


async def _open(opener: Opener) -> AsyncIterator[bytes]:
    # Opened here, when stream-zip starts this member, not when the member list is built.
    chunks: Chunks = opener()
    async for chunk in iterate(chunks):
        yield chunk


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
