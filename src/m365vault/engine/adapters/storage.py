"""The repository as the engine's `ContentSaver` and as control's `RepositoryInitialiser`.

The server keeps one open `Repository` per backup repository it writes to (opening reads the
whole index), with one `GroupFlush` in front of it so concurrent workers share flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from m365vault.clock import Clock, utcnow
from m365vault.engine.flushing import GroupFlush
from m365vault.repository import Repository, RepositoryError, WrongPassword
from m365vault.repository.backends.base import BackendError, Kind
from m365vault.repository.backends.location import open_backend

T = TypeVar("T")
log = logging.getLogger(__name__)


class RepositorySaver:
    """engine.ports.ContentSaver on an open repository."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.broken = False  # a write failed: this writer hands out no more durable refs

    async def save(self, stream: AsyncIterator[bytes], size: int | None = None) -> str:
        try:
            return await self.repository.save_item(stream, size)
        except RepositoryError:
            self.broken = True
            raise

    async def flush(self) -> None:
        try:
            await self.repository.flush()
        except RepositoryError:
            self.broken = True
            raise


async def open_or_create(location: str, password: str, *, create: bool, clock: Clock = utcnow) -> Repository:
    backend = await open_backend(location)
    try:
        empty = not [i async for i in backend.list(Kind.CONFIG)] and not [
            i async for i in backend.list(Kind.KEYS)
        ]
        if empty and create:
            return await Repository.init(backend, password, clock=clock)
        return await Repository.open(backend, password, clock=clock)
    except BaseException:
        await backend.close()
        raise


class OpenRepositories:
    """The repositories this server writes to, opened on first use and kept until `close`."""

    def __init__(self, password: Callable[[uuid.UUID], str], location: Callable[[uuid.UUID], str]) -> None:
        self._password = password
        self._location = location
        self._open: dict[uuid.UUID, tuple[RepositorySaver, GroupFlush]] = {}
        self._lock = asyncio.Lock()

    async def saver(self, repository_id: uuid.UUID) -> GroupFlush:
        """The shared saver; a writer that failed (refs since its last flush lost, which the
        catalog never recorded) is replaced by a freshly opened one for the next run."""
        async with self._lock:
            entry = self._open.get(repository_id)
            if entry is not None and entry[0].broken:
                log.warning("repository %s: a write failed earlier; opening it again", repository_id)
                with contextlib.suppress(Exception):
                    await entry[0].repository.close()
                entry = None
            if entry is None:
                location, password = await asyncio.to_thread(
                    lambda: (self._location(repository_id), self._password(repository_id))
                )
                repo = await open_or_create(location, password, create=True)
                saver = RepositorySaver(repo)
                entry = (saver, GroupFlush(saver))
                self._open[repository_id] = entry
            return entry[1]

    async def close(self) -> None:
        entries, self._open = list(self._open.values()), {}
        for saver, _ in entries:
            with contextlib.suppress(Exception):
                await saver.repository.close()


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from synchronous code, whether or not a loop runs here (the
    initialiser is called from request threads and at first start)."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body, name="repository-init")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class RepositoryFormatter:
    """control.ports.RepositoryInitialiser: a real repository at the path, under its password."""

    def initialise(self, repository_id: uuid.UUID, path: str, password: str) -> None:
        async def create() -> None:
            repo = await open_or_create(path, password, create=True)
            await repo.close()

        try:
            run_coroutine(create)
        except WrongPassword as exc:
            raise ValueError("a repository already exists there and this password does not open it") from exc
        except (RepositoryError, BackendError) as exc:
            raise ValueError(str(exc)) from exc
