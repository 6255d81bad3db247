"""The backup of one object (mailbox, OneDrive, site): delta pages in, versions out.

Per collection and per page, in this order:
1. read the page from the source (abandonable on stop);
2. save the content of new and changed items (abandonable on stop: content saved for an
   abandoned page is unreferenced and reclaimed by prune, never recorded);
3. flush the repository, then record the page's versions, gone-marks and token in one catalog
   transaction (never interrupted once begun).
Only then is the next page read. Unchanged items (a version the catalog already holds) cost no
content read. During a resync round the token is held back until the round's last page, when
items the catalog holds but the round did not return are marked gone; a crash in the middle of a
resync round therefore repeats the round instead of losing the diff.

Collections go in groups of `GROUP`: a `PrefetchingSource` first reads the group's first pages
together (Graph `$batch`), and a round that is a single empty final page only queues its new
token; the group's queued tokens are saved in one transaction after its last collection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from m365vault.clock import Clock
from m365vault.engine.budget import ContentBudget, ItemHold
from m365vault.engine.ports import (
    BackupObject,
    ChangePage,
    ChangeSource,
    CollectionRef,
    ContentGone,
    ContentSaver,
    ItemChange,
    ItemUnreadable,
    ItemVersion,
    PageRecord,
    PrefetchingSource,
    VersionRecorder,
)
from m365vault.engine.queue import StopSignal
from m365vault.engine.statistics import Counts

T = TypeVar("T")
GROUP = 20  # collections whose first pages are read ahead together (Graph's $batch limit)


class StopRequested(Exception):
    """The run is stopping; the page in progress was abandoned, recorded pages stay."""


class ObjectFailed(Exception):
    """Some collections of the object failed; the others were backed up."""


@dataclass(frozen=True)
class ObjectPorts:
    """The ports one object's backup uses (bound to its organization and repository)."""

    source: ChangeSource
    saver: ContentSaver
    recorder: VersionRecorder


async def until_stopped(stop: StopSignal, work: Awaitable[T]) -> T:
    """Await `work` unless the stop signal fires first; then cancel it and raise StopRequested."""
    task = asyncio.ensure_future(work)
    if stop.is_set():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise StopRequested
    waiter = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise StopRequested


class _MeteredStream:
    """Counts the bytes of a content stream and the time spent waiting for them, and charges
    them to the item's share of the content budget."""

    def __init__(self, stream: AsyncIterator[bytes], hold: ItemHold) -> None:
        self._stream = stream
        self._hold = hold
        self.bytes = 0
        self.seconds = 0.0

    def __aiter__(self) -> _MeteredStream:
        return self

    async def __anext__(self) -> bytes:
        started = time.monotonic()
        try:
            chunk = await anext(self._stream)
        finally:
            self.seconds += time.monotonic() - started
        self.bytes += len(chunk)
        self._hold.received(len(chunk))
        return chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


async def _next_page(pages: AsyncIterator[ChangePage]) -> ChangePage | None:
    # StopAsyncIteration cannot travel through a Task's result, so end-of-round becomes None.
    try:
        return await anext(pages)
    except StopAsyncIteration:
        return None


def collapse(changes: Sequence[ItemChange]) -> dict[str, list[ItemChange] | None]:
    """Per item id, in first-seen order: the distinct versions to record (oldest first), or None
    when the page's last word on the item is a removal. Replays within the page collapse."""
    out: dict[str, list[ItemChange] | None] = {}
    for change in changes:
        if change.removed:
            out[change.item_id] = None
            continue
        chain = out.get(change.item_id)
        if chain is None:
            out[change.item_id] = [change]
        elif all(known.version_key != change.version_key for known in chain):
            chain.append(change)
    return out


def _unseen(chain: list[ItemChange], current: str | None) -> list[ItemChange]:
    """The part of a version chain after the version the catalog already holds."""
    if current is None:
        return chain
    for index in range(len(chain) - 1, -1, -1):
        if chain[index].version_key == current:
            return chain[index + 1 :]
    return chain


class ObjectBackup:
    def __init__(
        self,
        obj: BackupObject,
        ports: ObjectPorts,
        *,
        stop: StopSignal,
        clock: Clock,
        on_page: Callable[[Counts], Awaitable[None]],
        item_concurrency: int = 4,
        budget: ContentBudget | None = None,
    ) -> None:
        self.obj = obj
        self._source = ports.source
        self._saver = ports.saver
        self._recorder = ports.recorder
        self._stop = stop
        self._clock = clock
        self._on_page = on_page
        self._item_concurrency = max(1, item_concurrency)
        self._budget = budget or ContentBudget()
        self.total = Counts()
        self.skipped_items: list[str] = []  # "name: reason", for the log (first few only)
        self._quiet: list[PageRecord] = []  # token-only records of unchanged collections

    async def run(self) -> Counts:
        started = time.monotonic()
        collections = await until_stopped(self._stop, self._source.collections(self.obj))
        listing = Counts(source_seconds=time.monotonic() - started)
        self.total = self.total + listing
        await self._on_page(listing)
        live = {collection.id for collection in collections}
        known = await self._recorder.known_collections(self.obj)
        failures: list[str] = []
        for start in range(0, len(collections), GROUP):
            group = collections[start : start + GROUP]
            tokens = [await self._recorder.load_token(self.obj, collection.id) for collection in group]
            await self._prefetch(list(zip(group, tokens, strict=True)))
            for collection, token in zip(group, tokens, strict=True):
                try:
                    await self._collection(collection, token)
                except (StopRequested, asyncio.CancelledError):
                    raise
                except Exception as exc:  # one bad folder must not stop the others
                    failures.append(f"{collection.name or collection.id}: {describe_error(exc)}")
            await self._commit_quiet()
        for collection in known:
            if collection.id not in live and not self._stop.is_set():
                await self._retire(collection)
        if failures:
            raise ObjectFailed("; ".join(failures[:5]) + (" ..." if len(failures) > 5 else ""))
        return self.total

    async def _prefetch(self, starts: list[tuple[CollectionRef, str | None]]) -> None:
        """Let a batching source read the group's first pages in a few round trips."""
        if not isinstance(self._source, PrefetchingSource):
            return
        started = time.monotonic()
        await until_stopped(self._stop, self._source.prefetch(self.obj, starts))
        counts = Counts(source_seconds=time.monotonic() - started)
        self.total = self.total + counts
        await self._on_page(counts)

    async def _collection(self, collection: CollectionRef, saved_token: str | None) -> None:
        resync_live: set[str] | None = None
        seen: set[str] = set()
        first = True
        pages = self._source.changes(self.obj, collection, saved_token)
        try:
            while True:
                started = time.monotonic()
                page = await until_stopped(self._stop, _next_page(pages))
                read_seconds = time.monotonic() - started
                if page is None:
                    return
                if first and page.final and not page.resync and not page.changes and page.token:
                    # Nothing changed: only the new token to save, with the group's other quiet ones.
                    if page.token != saved_token:
                        self._quiet.append(PageRecord(collection, [], [], page.token, self._clock()))
                    counts = Counts(source_seconds=read_seconds)
                    self.total = self.total + counts
                    await self._on_page(counts)
                    continue
                first = False
                if page.resync and resync_live is None:
                    resync_live = await self._recorder.live_ids(self.obj, collection.id)
                    seen = set()
                record, counts = await until_stopped(self._stop, self._save_page(collection, page))
                if resync_live is not None:
                    seen.update(change.item_id for change in page.changes)
                    if page.final:
                        vanished = sorted(resync_live - seen)
                        record = replace(record, gone=[*record.gone, *vanished], token=page.token)
                        counts = counts + Counts(removed=len(vanished))
                        resync_live = None
                    else:
                        record = replace(record, token=None)  # the diff needs the whole round
                if record.token == saved_token:
                    record = replace(record, token=None)
                counts = counts + Counts(source_seconds=read_seconds)
                counts = counts + await asyncio.shield(self._commit(record))
                if record.token is not None:
                    saved_token = record.token
                self.total = self.total + counts
                await self._on_page(counts)
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()

    async def _save_page(self, collection: CollectionRef, page: ChangePage) -> tuple[PageRecord, Counts]:
        collapsed = collapse(page.changes)
        upserts = [item_id for item_id, chain in collapsed.items() if chain is not None]
        current = await self._recorder.current_versions(self.obj, collection.id, upserts) if upserts else {}
        gone: list[str] = []
        todo: list[ItemChange] = []
        unchanged = 0
        for item_id, chain in collapsed.items():
            if chain is None:
                gone.append(item_id)
                continue
            fresh = _unseen(chain, current.get(item_id))
            unchanged += len(chain) - len(fresh)
            todo.extend(fresh)
        results = await self._save_all(collection, todo)
        versions = [version for version, _ in results if version is not None]
        counts = Counts(versions=len(versions), removed=len(gone), unchanged=unchanged)
        for _, item_counts in results:
            counts = counts + item_counts
        record = PageRecord(collection, versions, gone, page.token, self._clock())
        return record, counts

    async def _save_all(
        self, collection: CollectionRef, todo: list[ItemChange]
    ) -> list[tuple[ItemVersion | None, Counts]]:
        """Save the items' content, `item_concurrency` at a time (Graph allows 4 concurrent
        requests per mailbox), with a few long-lived lanes rather than a task per item."""
        results: list[tuple[ItemVersion | None, Counts]] = [(None, Counts())] * len(todo)
        indexes = iter(range(len(todo)))

        async def lane() -> None:
            for index in indexes:
                results[index] = await self._save_item(collection, todo[index])

        await _all_or_nothing([lane() for _ in range(min(self._item_concurrency, len(todo)))])
        return results

    async def _save_item(
        self, collection: CollectionRef, change: ItemChange
    ) -> tuple[ItemVersion | None, Counts]:
        if not change.has_content:
            return ItemVersion(change.item_id, change.version_key, None, 0, change.metadata), Counts()
        given = change.metadata.get("size")
        size = given if isinstance(given, int) else None
        started = time.monotonic()  # a wait for the budget is a wait for the repository to catch up
        item_hold = self._budget.covered() if change.read_ahead else self._budget.hold(size)
        async with item_hold as hold:
            stream = _MeteredStream(self._source.content(self.obj, collection, change), hold)
            try:
                ref = await self._saver.save(stream, size)
            except ContentGone:
                return None, Counts(bytes=stream.bytes, source_seconds=stream.seconds)
            except ItemUnreadable as exc:
                if len(self.skipped_items) < 10:
                    name = str(change.metadata.get("name") or change.item_id)
                    self.skipped_items.append(f"{collection.name or collection.id}/{name}: {exc}")
                return None, Counts(skipped=1, bytes=stream.bytes, source_seconds=stream.seconds)
            finally:
                await stream.aclose()
        elapsed = time.monotonic() - started
        version = ItemVersion(change.item_id, change.version_key, ref, stream.bytes, change.metadata)
        counts = Counts(
            bytes=stream.bytes,
            source_seconds=stream.seconds,
            target_seconds=max(0.0, elapsed - stream.seconds),
        )
        return version, counts

    async def _commit(self, record: PageRecord) -> Counts:
        """Content durable, then versions + gone-marks + token in one transaction."""
        if not record.versions and not record.gone and record.token is None and not record.retire:
            return Counts()
        started = time.monotonic()
        if any(version.content_ref is not None for version in record.versions):
            await self._saver.flush()
        await self._recorder.record_page(self.obj, record)
        return Counts(target_seconds=time.monotonic() - started)

    async def _commit_quiet(self) -> None:
        """Save the tokens of the group's unchanged collections in one transaction. A token that
        is not saved (stop, crash) costs nothing but a repeat of the same empty round; saving it
        matters because Outlook keeps only the newest few sync states of a folder (§3.1)."""
        records, self._quiet = self._quiet, []
        if not records:
            return
        started = time.monotonic()
        await asyncio.shield(self._recorder.record_pages(self.obj, records))
        counts = Counts(target_seconds=time.monotonic() - started)
        self.total = self.total + counts
        await self._on_page(counts)

    async def _retire(self, collection: CollectionRef) -> None:
        gone = sorted(await self._recorder.live_ids(self.obj, collection.id))
        record = PageRecord(collection, [], gone, None, self._clock(), retire=True)
        counts = Counts(removed=len(gone)) + await asyncio.shield(self._commit(record))
        self.total = self.total + counts
        await self._on_page(counts)


async def _all_or_nothing(work: Sequence[Awaitable[T]]) -> list[T]:
    """Like gather, but the first failure cancels the rest (a failed page is abandoned whole)."""
    tasks = [asyncio.ensure_future(item) for item in work]
    if not tasks:
        return []
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if pending:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        error = task.exception() if task.done() and not task.cancelled() else None
        if error is not None:
            raise error
    return [task.result() for task in tasks]


def describe_error(exc: BaseException) -> str:
    """A one-line, bounded description for log items (adapters keep secrets out of messages)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    line = f"{name}: {text}" if text else name
    return line if len(line) <= 300 else line[:297] + "..."
