"""Content of backed-up versions, read back from the repositories that hold them.

A restore session reads from whichever repository the catalog object lives in; `RepositoryPool`
opens each repository once (its index loaded once) and shares it between sessions. Where a
repository is and how to unlock it is the caller's knowledge (control holds the sealed passwords);
the pool asks through `RepositoryLocator`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from m365vault.catalog import VersionInfo
from m365vault.repository import Repository
from m365vault.repository.backends.location import open_backend


@dataclass(frozen=True)
class RepositoryAccess:
    location: str  # a directory path or an s3:// URL
    password: str


RepositoryLocator = Callable[[str], RepositoryAccess]
"""repository id (as the catalog stores it) -> where it is and its password; raises KeyError."""


class NoContent(Exception):
    """A version has no content in the repository (a container, or a version recorded without it)."""


class RepositoryPool:
    def __init__(self, locate: RepositoryLocator) -> None:
        self._locate = locate
        self._open: dict[str, Repository] = {}
        self._lock = asyncio.Lock()

    async def get(self, repository_id: str) -> Repository:
        async with self._lock:
            repo = self._open.get(repository_id)
            if repo is None:
                access = await asyncio.to_thread(self._locate, repository_id)
                backend = await open_backend(access.location)
                repo = await Repository.open(backend, access.password)
                self._open[repository_id] = repo
            return repo

    async def refresh(self, repository_id: str) -> None:
        """Forget an open repository so the next read sees index files written since it was opened."""
        async with self._lock:
            repo = self._open.pop(repository_id, None)
        if repo is not None:
            await repo.close()

    async def close(self) -> None:
        async with self._lock:
            repos, self._open = list(self._open.values()), {}
        for repo in repos:
            await repo.close()


class ContentReader:
    """Opens the content of versions of one repository's objects."""

    def __init__(self, pool: RepositoryPool, repository_id: str) -> None:
        self._pool = pool
        self._repository_id = repository_id

    def opener(self, version: VersionInfo) -> Callable[[], AsyncIterator[bytes]]:
        """A zero-argument opener for the formats (content is read only when the output reaches it)."""
        return lambda: self.stream(version)

    async def stream(self, version: VersionInfo) -> AsyncIterator[bytes]:
        if version.content_ref is None:
            raise NoContent(f"{version.metadata.name or version.external_id} has no stored content")
        async for chunk in self.stream_ref(version.content_ref):
            yield chunk

    async def stream_ref(self, ref: str) -> AsyncIterator[bytes]:
        """An item by its ref (a group post's attachment, named in its thread's content)."""
        repo = await self._pool.get(self._repository_id)
        # The repository reloads its index once when a ref is newer than what it loaded.
        async for chunk in repo.open_item(ref):
            yield chunk

    async def read(self, version: VersionInfo) -> bytes:
        return b"".join([chunk async for chunk in self.stream(version)])
