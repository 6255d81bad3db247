"""A local directory backend.

Publication is atomic and durable: write a temp file beside the target, fsync it, link it into
place (link fails if the target exists, which gives create-only semantics without a race), unlink
the temp name, then fsync the directory so the new name itself survives a power cut. Temp files
start with "." and are never listed, so a crash leaves only invisible garbage.

Blocking file I/O runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from m365vault.repository.backends.base import (
    AlreadyExists,
    BackendError,
    BackendProperties,
    Handle,
    Kind,
    NotFound,
    ObjectInfo,
    Payload,
    Retention,
    check_range,
    handle_from_path,
)

# Writeback of a large object starts every this many bytes while the rest is still being copied in,
# so the fsync waits for less: a 34 MB pack, write + fsync 32 -> 23 ms (bench_repository (b) large
# items end with one or two such packs stored after the last blob is encoded).
_WRITEBACK_STEP = 4 * 1024 * 1024


def _write_all(out: BinaryIO, data: Payload) -> None:
    if isinstance(data, bytes) or not hasattr(os, "posix_fadvise"):
        out.writelines([data] if isinstance(data, bytes) else data)
        return
    start = written = 0
    for part in data:
        out.write(part)
        written += len(part)
        if written - start >= _WRITEBACK_STEP:
            out.flush()
            # DONTNEED starts writeback of the dirty range (and drops pages once clean: a writer
            # does not read its packs back).
            os.posix_fadvise(out.fileno(), start, written - start, os.POSIX_FADV_DONTNEED)
            start = written


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        if retention is not None:
            raise BackendError("a local directory cannot hold Object Lock retention", permanent=True)
        await asyncio.to_thread(self._save, handle, data)

    def _save(self, handle: Handle, data: Payload) -> None:
        target = self.root / handle.path()
        folder = target.parent
        created_dirs = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".tmp-{secrets.token_hex(8)}"
        try:
            with open(temp, "xb") as out:
                _write_all(out, data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temp, target)  # fails with EEXIST: create-only without a check-then-act race
            except FileExistsError:
                raise AlreadyExists(str(handle)) from None
        except OSError as err:
            raise _classify(err, handle) from err
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(folder)
        if created_dirs:
            _fsync_dir(folder.parent)

    async def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return await asyncio.to_thread(self._load, handle, offset, length)

    def _load(self, handle: Handle, offset: int, length: int | None) -> bytes:
        try:
            with open(self.root / handle.path(), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                end = check_range(size, offset, length, handle)
                f.seek(offset)
                data = f.read(end - offset)
        except OSError as err:
            raise _classify(err, handle) from err
        if len(data) != end - offset:
            raise BackendError(f"{handle}: short read", permanent=True)
        return data

    async def stat(self, handle: Handle) -> ObjectInfo:
        try:
            st = await asyncio.to_thread(os.stat, self.root / handle.path())
        except OSError as err:
            raise _classify(err, handle) from err
        return ObjectInfo(handle, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    async def list(self, kind: Kind) -> AsyncIterator[ObjectInfo]:
        for info in await asyncio.to_thread(self._list, kind):
            yield info

    def _list(self, kind: Kind) -> Sequence[ObjectInfo]:
        if kind is Kind.CONFIG:
            path = self.root / "config"
            if not path.exists():
                return []
            st = path.stat()
            return [
                ObjectInfo(
                    Handle(Kind.CONFIG, "config"), st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)
                )
            ]
        base = self.root / kind.value
        found: list[ObjectInfo] = []
        if not base.exists():
            return found
        for dirpath, _dirs, files in os.walk(base):
            for fname in files:
                full = Path(dirpath) / fname
                handle = handle_from_path(full.relative_to(self.root).as_posix())
                if handle is None or handle.kind is not kind:
                    continue
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue  # removed while listing
                found.append(ObjectInfo(handle, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return found

    async def remove(self, handle: Handle) -> None:
        await asyncio.to_thread(self._remove, handle)

    def _remove(self, handle: Handle) -> None:
        target = self.root / handle.path()
        try:
            target.unlink()
        except OSError as err:
            raise _classify(err, handle) from err
        _fsync_dir(target.parent)

    async def remove_temp_files(self, older_than: datetime) -> int:
        """Delete temp files a killed writer left behind (invisible to `list`, but they use disk).
        Only files last modified before `older_than`, so a save in progress is never touched."""
        return await asyncio.to_thread(self._remove_temp_files, older_than.timestamp())

    def _remove_temp_files(self, before: float) -> int:
        removed = 0
        for temp in self.root.rglob(".tmp-*"):
            try:
                if temp.stat().st_mtime < before:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def properties(self) -> BackendProperties:
        return BackendProperties(location=str(self.root), supports_object_lock=False)

    async def close(self) -> None:
        return None


def _classify(err: OSError, handle: Handle) -> BackendError:
    if isinstance(err, BackendError):
        return err
    if err.errno == errno.ENOENT:
        return NotFound(str(handle))
    permanent = err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR)
    return BackendError(f"{handle}: {err.strerror}", permanent=permanent)
