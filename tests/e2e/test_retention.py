"""The retention service over real parts: the configuration and catalog database (SQLite and
PostgreSQL), a local repository, virtual time. At a repository's pass time the catalog forgets what
fell out of the period, prune marks and (after its grace period) sweeps, `check --read-data`
passes, and a backup running meanwhile keeps what it references."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from m365vault.bootstrap import (
    ProductSettings,
    ServerConfig,
    build_control,
    ensure_defaults,
    open_database,
    wire_product,
)
from m365vault.catalog import (
    CatalogWriter,
    ContentRefs,
    EntryKind,
    EntryMetadata,
    ObjectKind,
    PageWrite,
    RetentionPolicy,
    VersionWrite,
)
from m365vault.control.enums import DailyType, RetentionFrequencyType, RetentionPeriodType, RetentionType
from m365vault.control.facade import Control
from m365vault.control.infrastructure import RepositoryInput
from m365vault.db.config_tables import BackupRepository
from m365vault.engine.adapters.retention import (
    DbRetentionSchedules,
    PassResult,
    RepositoryMaintenance,
    RetentionScheduler,
)
from m365vault.repository import KdfParams, Repository, RepositoryError
from m365vault.repository.backends.local import LocalBackend
from tests.support.virtual_time import VirtualTime

ORG = "6b1f4bde-4cf1-4bb0-9d1c-2b1e9d7d0001"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # behind the real clock: new packs are never "old"
FIRST_PASS = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # the policies below run daily at 03:00
INBOX = "inbox"


@dataclass
class Server:
    """The parts of a server the retention service works with."""

    engine: Engine
    control: Control
    repository_id: uuid.UUID
    path: Path
    password: str
    vt: VirtualTime
    catalog: CatalogWriter
    results: list[PassResult] = field(default_factory=list)
    mailbox: int = 0

    async def open_repository(self, repository_id: uuid.UUID) -> Repository:
        assert repository_id == self.repository_id
        return await Repository.open(LocalBackend(self.path), self.password, clock=self.vt.clock)

    async def run_pass(self, repository_id: uuid.UUID, policy: RetentionPolicy) -> PassResult:
        maintenance = RepositoryMaintenance(self.engine, self.open_repository, self.vt.now, self.vt.sleep)
        result = await maintenance.run(repository_id, policy)
        self.results.append(result)
        return result

    def next_pass(self) -> datetime | None:
        with Session(self.engine) as db:
            return db.scalar(
                select(BackupRepository.retention_next_pass).where(BackupRepository.id == self.repository_id)
            )

    def backup(self, at: datetime, *items: tuple[str, str, datetime]) -> None:
        """Record a backup run of the mailbox: (item id, content ref, modified at) upserts."""
        upserts = [VersionWrite(INBOX, EntryKind.FOLDER, None, EntryMetadata(name="Inbox"))]
        upserts += [
            VersionWrite(ext, EntryKind.ITEM, INBOX, EntryMetadata(subject=ext, modified_at=modified), ref)
            for ext, ref, modified in items
        ]
        self.catalog.apply_page(self.mailbox, PageWrite(at, upserts=tuple(upserts)))
        self.catalog.record_restore_point(self.mailbox, at)

    def live_refs(self) -> set[str]:
        return set(ContentRefs(self.engine).live_refs(str(self.repository_id)))

    def data_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.path / "data").rglob("*") if f.is_file())


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[Server]:
    config = ServerConfig(data_dir=tmp_path / "data", db_url=db_url)
    engine = open_database(config)
    control = build_control(config, engine)
    ensure_defaults(control, config.data_dir, "admin", "Admin-Password-1")
    row = control.repositories.all()[0]
    password = control.repositories.password(row.id)
    vt = VirtualTime(NOW)
    repo = await Repository.init(LocalBackend(row.path), password, kdf=KdfParams.for_tests(), clock=vt.clock)
    await repo.close()
    catalog = CatalogWriter(engine)
    result = Server(engine, control, row.id, Path(row.path), password, vt, catalog)
    result.mailbox = catalog.ensure_object(
        ORG, str(row.id), ObjectKind.MAILBOX, "user-1", seen_at=NOW - timedelta(days=5), name="user-1"
    ).id
    try:
        yield result
    finally:
        engine.dispose()


def set_policy(server: Server, kind: RetentionType) -> None:
    server.control.repositories.edit(
        server.repository_id,
        RepositoryInput(
            retention_type=kind,
            retention_period_type=RetentionPeriodType.Daily,
            daily_retention_period=1,
            retention_frequency_type=RetentionFrequencyType.Daily,
            daily_time="03:00:00",
            daily_type=DailyType.EVERYDAY,
        ),
    )


async def eventually(vt: VirtualTime, check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Wait in real time (the service's database and file work runs in threads), waking whoever
    sleeps until the virtual now (a scheduler whose due time came while it was busy)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await vt.advance(timedelta(0))
        await asyncio.sleep(0.02)


@dataclass
class Running:
    scheduler: RetentionScheduler
    store: DbRetentionSchedules
    task: asyncio.Task[None]


async def start(server: Server, run_pass: Callable[..., Awaitable[object]] | None = None) -> Running:
    store = DbRetentionSchedules(server.engine, run_pass or server.run_pass)
    scheduler = RetentionScheduler(store, ZoneInfo("UTC"), clock=server.vt.now, sleep=server.vt.sleep)
    return Running(scheduler, store, asyncio.create_task(scheduler.run()))


async def stop(running: Running) -> None:
    running.task.cancel()
    await asyncio.gather(running.task, return_exceptions=True)
    await running.store.close()


async def save(repo: Repository, content: bytes) -> str:
    ref = await repo.save_item(content)
    await repo.flush()  # one pack per item: what retention frees is a whole pack
    return ref


async def assert_check_passes(server: Server) -> None:
    async with await Repository.open(LocalBackend(server.path), server.password) as repo:
        report = await repo.check(read_data=True)
        assert report.ok, [(p.object, p.message) for p in report.errors]


def marked(server: Server) -> bool:
    """Prune's phase 1 is done and the pass sleeps through the grace period (beside the scheduler)."""
    marks = server.path / "marks"
    return marks.is_dir() and any(marks.iterdir()) and server.vt.sleepers == 2


async def run_first_pass_to_the_end(server: Server) -> PassResult:
    """Start the service, let the first pass time come, and the prune's grace period pass."""
    running = await start(server)
    try:
        await eventually(server.vt, lambda: server.next_pass() is not None, "the first pass time")
        assert server.next_pass() == FIRST_PASS
        await server.vt.advance_to(FIRST_PASS + timedelta(seconds=1))
        await eventually(server.vt, lambda: marked(server), "the prune mark")
        await server.vt.advance(timedelta(hours=1, minutes=1))  # prune's grace period
        await eventually(server.vt, lambda: bool(server.results), "the end of the pass")
    finally:
        await stop(running)
    return server.results[0]


async def test_item_level_pass_removes_old_items_and_reclaims_their_space(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    set_policy(server, RetentionType.ItemLevel)
    old_content, new_content = os.urandom(300_000), os.urandom(20_000)
    async with await Repository.open(
        LocalBackend(server.path), server.password, clock=server.vt.clock
    ) as repo:
        old_ref = await save(repo, old_content)
        new_ref = await save(repo, new_content)
    server.backup(NOW - timedelta(days=3), ("old", old_ref, NOW - timedelta(days=3)))
    server.backup(NOW - timedelta(hours=1), ("new", new_ref, NOW - timedelta(hours=1)))
    before = server.data_bytes()

    with caplog.at_level(logging.INFO, logger="m365vault.engine.adapters.retention"):
        result = await run_first_pass_to_the_end(server)

    assert result.retention.versions_removed == 1 and result.swept
    assert server.live_refs() == {new_ref}
    assert result.freed_bytes >= 300_000 and server.data_bytes() <= before - 300_000
    assert server.next_pass() == FIRST_PASS + timedelta(days=1)
    async with await Repository.open(LocalBackend(server.path), server.password) as repo:
        assert await repo.read_item(new_ref) == new_content
        with pytest.raises(RepositoryError):
            await repo.read_item(old_ref)
    await assert_check_passes(server)
    assert list(ContentRefs(server.engine).released_refs(str(server.repository_id))) == []
    logged = caplog.text
    assert "1 versions and 1 restore points older than 2026-03-02T03:00" in logged
    assert f"prune reclaimed {result.freed_bytes} bytes" in logged


async def test_snapshot_based_pass_keeps_the_state_of_the_last_snapshot(server: Server) -> None:
    set_policy(server, RetentionType.SnapshotBased)
    first, second = os.urandom(300_000), os.urandom(30_000)
    async with await Repository.open(
        LocalBackend(server.path), server.password, clock=server.vt.clock
    ) as repo:
        first_ref = await save(repo, first)
        second_ref = await save(repo, second)
    modified = NOW - timedelta(days=30)  # snapshot-based retention does not look at item ages
    server.backup(NOW - timedelta(days=3), ("a", first_ref, modified))
    server.backup(NOW - timedelta(days=2), ("a", second_ref, modified + timedelta(days=1)))
    before = server.data_bytes()

    result = await run_first_pass_to_the_end(server)

    # Both restore points are older than the day kept; the item's current version stays.
    assert result.retention.versions_removed == 1 and result.retention.restore_points_removed == 2
    assert server.live_refs() == {second_ref}
    assert result.swept and server.data_bytes() <= before - 300_000
    async with await Repository.open(LocalBackend(server.path), server.password) as repo:
        assert await repo.read_item(second_ref) == second
    await assert_check_passes(server)


async def test_a_backup_running_during_the_pass_keeps_what_it_references(server: Server) -> None:
    set_policy(server, RetentionType.ItemLevel)
    early, late, dropped = os.urandom(200_000), os.urandom(200_000), os.urandom(200_000)
    writer = await Repository.open(LocalBackend(server.path), server.password, clock=server.vt.clock)
    try:
        refs = {name: await save(writer, content) for name, content in (("early", early), ("late", late))}
        refs["dropped"] = await save(writer, dropped)
        old = NOW - timedelta(days=3)
        server.backup(old, *((name, ref, old) for name, ref in refs.items()))
        # A backup in progress stores `early` again (deduplicated into the old pack) before the
        # pass and records it only after the pass marked that pack.
        assert await writer.save_item(early) == refs["early"]

        running = await start(server)
        try:
            await eventually(server.vt, lambda: server.next_pass() is not None, "the first pass time")
            await server.vt.advance_to(FIRST_PASS + timedelta(seconds=1))
            await eventually(server.vt, lambda: marked(server), "the prune mark")
            assert server.live_refs() == set()  # all three versions are out of the period
            # The backup goes on after the mark: `late` only lives in a marked pack, so the
            # writer must store a fresh copy, not point into the pack the sweep will delete.
            late_again = await writer.save_item(late)
            await writer.flush()
            now = server.vt.now()
            server.backup(now, ("early", refs["early"], now), ("late", late_again, now))
            await server.vt.advance(timedelta(hours=1, minutes=1))
            await eventually(server.vt, lambda: bool(server.results), "the end of the pass")
        finally:
            await stop(running)
    finally:
        await writer.close()

    result = server.results[0]
    assert result.swept and result.freed_bytes >= 200_000
    async with await Repository.open(LocalBackend(server.path), server.password) as repo:
        assert await repo.read_item(refs["early"]) == early
        assert await repo.read_item(late_again) == late
        with pytest.raises(RepositoryError):
            await repo.read_item(refs["dropped"])
    await assert_check_passes(server)


async def test_a_failed_pass_is_logged_and_retried_at_the_next_pass_time(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    set_policy(server, RetentionType.ItemLevel)
    attempts: list[datetime] = []

    async def failing_once(repository_id: uuid.UUID, policy: RetentionPolicy) -> PassResult:
        attempts.append(server.vt.now())
        if len(attempts) == 1:
            raise RepositoryError("the repository is unreachable")
        return await server.run_pass(repository_id, policy)

    running = await start(server, failing_once)
    try:
        await eventually(server.vt, lambda: server.next_pass() is not None, "the first pass time")
        with caplog.at_level(logging.ERROR, logger="m365vault.engine.adapters.retention"):
            await server.vt.advance_to(FIRST_PASS + timedelta(seconds=1))
            await eventually(server.vt, lambda: "failed" in caplog.text, "the error")
        assert "the pass of repository" in caplog.text and "the repository is unreachable" in caplog.text
        await eventually(
            server.vt, lambda: server.next_pass() == FIRST_PASS + timedelta(days=1), "the next pass time"
        )
        await server.vt.advance_to(FIRST_PASS + timedelta(days=1, seconds=1))
        await eventually(server.vt, lambda: bool(server.results), "the retried pass")
    finally:
        await stop(running)
    assert len(attempts) == 2 and attempts[1] >= FIRST_PASS + timedelta(days=1)


async def test_a_pass_missed_while_the_server_was_down_runs_at_start(server: Server) -> None:
    set_policy(server, RetentionType.ItemLevel)
    missed = NOW - timedelta(hours=7)  # today's 03:00, while no server ran
    with server.engine.begin() as conn:
        conn.execute(
            update(BackupRepository)
            .where(BackupRepository.id == server.repository_id)
            .values(retention_next_pass=missed)
        )
    running = await start(server)
    try:
        await eventually(server.vt, lambda: bool(server.results), "the missed pass")
    finally:
        await stop(running)
    assert server.results[0].retention.ran_at == NOW
    assert server.next_pass() == FIRST_PASS
    set_policy(server, RetentionType.SnapshotBased)  # a changed policy is scheduled anew
    assert server.next_pass() is None


async def test_the_server_starts_the_retention_service_with_its_scheduler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The wiring of a real server: the repository comes from the configuration (path, sealed
    # password), and a pass time that passed while the server was down runs at start.
    config = ServerConfig(
        data_dir=tmp_path / "data", clock=lambda: NOW, product=ProductSettings(timezone="UTC")
    )
    engine = open_database(config)
    product = wire_product(config, engine)
    control = build_control(config, engine)
    product.bind(control)
    ensure_defaults(control, config.data_dir, "admin", "Admin-Password-1")
    [row] = control.repositories.all()
    with engine.begin() as conn:
        conn.execute(update(BackupRepository).values(retention_next_pass=NOW - timedelta(hours=7)))
    try:
        with caplog.at_level(logging.INFO, logger="m365vault.engine.adapters.retention"):
            await product.start()
            deadline = asyncio.get_running_loop().time() + 60
            while "prune reclaimed" not in caplog.text:
                assert asyncio.get_running_loop().time() < deadline, caplog.text
                await asyncio.sleep(0.05)
        assert f"repository {row.id}: 0 versions" in caplog.text
    finally:
        await product.close()
        engine.dispose()
