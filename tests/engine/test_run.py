"""A whole run: status rules, retries, log items, progress, statistics, stop and backup window."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from m365vault.clock import FakeClock, utcnow
from m365vault.engine.planner import JobScope, UserItem
from m365vault.engine.ports import Bottleneck, ItemUnreadable, LogStatus, SessionStatus, TenantUser
from m365vault.engine.queue import InProcessQueue, OutcomeStatus
from m365vault.engine.run import BackupRun, RetryPolicy, RunRequest, StopReason
from m365vault.engine.service import BackupEngine, RunAlreadyActive
from m365vault.engine.testing import FakeTenant, RecordingReporter, mailbox
from m365vault.engine.worker import ProxyWorkers
from tests.engine.harness import World, backup, start_backup, wait_until


def org(users: int = 3, items: int = 6, size: int = 2000, page_size: int = 4) -> World:
    world = World(FakeTenant(page_size=page_size))
    for n in range(users):
        world.tenant.add_user(TenantUser(f"u-{n}", f"user{n}@contoso.com", has_onedrive=False))
        for i in range(items):
            world.tenant.put(mailbox(f"u-{n}"), "inbox", f"m-{i}", bytes([i]) * (size + i))
    return world


class SteppingSleep:
    """Retry waits on the fake clock: records the wait and moves time forward at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


async def test_success_run_logs_every_phase_and_reports_progress() -> None:
    world = org(users=3)
    result, reporter = await backup(world)
    assert result.status is SessionStatus.SUCCESS
    assert reporter.status is SessionStatus.SUCCESS and reporter.end_time is not None
    titles = reporter.titles
    assert titles[0].startswith("[Success] Job started at ")
    assert titles[1] == "[Success] Connected to organization contoso"
    assert titles[2] == "[Success] Found 3 objects to process"
    processed = [t for t in titles if t.startswith("[Success] Processing mailbox")]
    assert len(processed) == 3
    assert "user0@contoso.com finished: 6 items (11.7 KB) backed up, 0 removed" in processed[0]
    assert titles[-1].startswith("[Success] Job finished at ")
    assert all(item.title.startswith(f"[{item.status.value}] ") for item in reporter.items)
    progress = [p for p, _ in reporter.progress_updates]
    assert progress == sorted(progress) and progress[-1] == 3 == result.progress


async def test_statistics_are_plausible() -> None:
    world = org(users=2, items=10, size=5000)
    world.tenant.content_delay = 0.002  # the tenant is the slow side
    result, reporter = await backup(world)
    stats = result.statistics
    content = sum(len(c) for n in range(2) for c in world.tenant.live(mailbox(f"u-{n}"), "inbox").values())
    assert stats.transferred_data_bytes == content == world.store.bytes_received
    assert stats.processed_objects == 20
    assert stats.processing_rate_bytes_ps > 0 and stats.processing_rate_items_ps > 0
    assert stats.read_rate_bytes_ps >= stats.processing_rate_bytes_ps
    assert stats.write_rate_bytes_ps >= stats.processing_rate_bytes_ps
    assert stats.bottleneck is Bottleneck.SOURCE
    assert reporter.progress_updates[-1][1] == stats

    slow_target = org(users=2, items=10, size=5000)
    slow_target.store.save_delay = 0.004
    result, _ = await backup(slow_target)
    assert result.statistics.bottleneck is Bottleneck.TARGET
    assert result.statistics.write_rate_bytes_ps < result.statistics.read_rate_bytes_ps


async def test_nothing_transferred_has_no_bottleneck() -> None:
    world = org(users=1, items=3)
    await backup(world)
    result, _ = await backup(world)  # incremental, nothing changed
    assert result.statistics.transferred_data_bytes == 0
    assert result.statistics.bottleneck is Bottleneck.NA


async def test_a_failed_object_is_retried_after_the_wait_and_the_run_succeeds() -> None:
    world = org(users=3)
    world.tenant.fail(mailbox("u-1"), times=2)
    clock = FakeClock()
    sleep = SteppingSleep(clock)
    result, reporter = await backup(
        world, retry=RetryPolicy(retries=3, wait_minutes=10), clock=clock, sleep=sleep
    )
    assert result.status is SessionStatus.SUCCESS
    assert sleep.waits == [600.0, 600.0]
    (retried,) = [r for r in result.objects if r.obj.id == "u-1"]
    assert retried.attempts == 3 and retried.status is OutcomeStatus.SUCCESS
    warnings = [t for t in reporter.titles if t.startswith("[Warning]")]
    assert len(warnings) == 2
    assert "user1@contoso.com failed (attempt 1), retrying in 10 minutes" in warnings[0]
    assert "simulated outage" in warnings[0]
    assert reporter.end_time == clock() - timedelta(0) and reporter.end_time - reporter.items[
        0
    ].creation_time >= timedelta(minutes=20)
    assert world.catalog.live_content(mailbox("u-1"), "inbox")


async def test_objects_failing_after_retries_make_a_warning_and_all_failing_a_failure() -> None:
    world = org(users=3)
    world.tenant.fail(mailbox("u-2"), times=5)
    clock = FakeClock()
    result, reporter = await backup(
        world, retry=RetryPolicy(retries=1, wait_minutes=1), clock=clock, sleep=SteppingSleep(clock)
    )
    assert result.status is SessionStatus.WARNING
    assert [r.status for r in result.objects] == [
        OutcomeStatus.SUCCESS,
        OutcomeStatus.SUCCESS,
        OutcomeStatus.FAILED,
    ]
    assert any(
        t.startswith("[Failed] Processing mailbox user2@contoso.com failed: ConnectionError")
        for t in reporter.titles
    )
    assert reporter.titles[-1].startswith("[Warning] Job finished with warnings")
    assert result.progress == 3  # the failed object counts as processed

    world = org(users=2)
    for n in range(2):
        world.tenant.fail(mailbox(f"u-{n}"), times=1)
    result, reporter = await backup(world)  # no retries
    assert result.status is SessionStatus.FAILED
    assert reporter.titles[-1].startswith("[Failed] Job failed at ")


async def test_a_run_that_cannot_reach_the_organization_fails() -> None:
    world = org(users=1)
    world.tenant.directory_error = PermissionError("AADSTS7000215: Invalid client secret provided")
    result, reporter = await backup(world)
    assert result.status is SessionStatus.FAILED
    assert reporter.status is SessionStatus.FAILED
    assert reporter.titles[1] == (
        "[Failed] Failed to connect to organization contoso: "
        "PermissionError: AADSTS7000215: Invalid client secret provided"
    )
    assert world.catalog.commits == 0


async def test_a_missing_selected_user_or_an_empty_plan_is_a_warning() -> None:
    world = org(users=1)
    scope = JobScope(False, selected=[UserItem("u-0", mailbox=True), UserItem("u-gone", mailbox=True)])
    result, reporter = await backup(world, scope)
    assert result.status is SessionStatus.WARNING
    assert "[Warning] User u-gone was not found in the organization" in reporter.titles
    assert result.objects[0].status is OutcomeStatus.SUCCESS

    result, reporter = await backup(org(users=0))
    assert result.status is SessionStatus.WARNING
    assert "[Warning] No objects to process" in reporter.titles


async def test_stop_ends_the_session_stopped_even_with_tasks_still_queued() -> None:
    world = org(users=8, items=20, page_size=2)
    world.tenant.content_delay = 0.01
    started = await start_backup(world, threads=1)
    await wait_until(lambda: world.catalog.commits >= 1)
    asked = time.monotonic()
    await started.run.stop()
    result = await started.result()
    assert time.monotonic() - asked < 2.0
    assert result.status is SessionStatus.STOPPED and result.stop_reason is StopReason.USER
    assert sum(r.status is OutcomeStatus.STOPPED for r in result.objects) >= 7
    assert started.reporter.titles[-1].startswith("[Warning] Job was stopped by user")


async def test_stop_during_a_retry_wait_ends_at_once() -> None:
    world = org(users=1)
    world.tenant.fail(mailbox("u-0"), times=3)
    started = await start_backup(world, retry=RetryPolicy(retries=2, wait_minutes=60))
    await wait_until(lambda: any("retrying in 60 minutes" in t for t in started.reporter.titles))
    await started.run.stop()
    result = await started.result()
    assert result.status is SessionStatus.STOPPED


@pytest.mark.timeout(20)
async def test_the_backup_window_terminates_the_run() -> None:
    world = org(users=4, items=150, page_size=2)  # ~1.5 s of work: longer than the window
    world.tenant.content_delay = 0.01
    started = await start_backup(world, threads=2, deadline=utcnow() + timedelta(seconds=0.4), clock=utcnow)
    began = time.monotonic()
    result = await started.result()
    assert 0.3 < time.monotonic() - began < 3.0
    assert result.status is SessionStatus.STOPPED and result.stop_reason is StopReason.WINDOW
    last = started.reporter.items[-1]
    assert last.status is LogStatus.WARNING
    assert "terminated" in last.title and "backup window ended" in last.title
    assert world.catalog.commits > 0  # what was done before the window closed stays


async def test_the_engine_service_runs_stops_and_refuses_a_second_start_of_the_same_run() -> None:
    world = org(users=3, items=30, page_size=2)
    world.tenant.content_delay = 0.005
    engine = BackupEngine(world.ports, clock=FakeClock(), threads=2)
    await engine.start()
    try:
        request = RunRequest("session-1", "org-1", "contoso", JobScope(True))
        reporter = RecordingReporter()
        task = await engine.start_run(request, directory=world.tenant, reporter=reporter)
        assert engine.is_active("session-1")
        with pytest.raises(RunAlreadyActive):
            await engine.start_run(request, directory=world.tenant, reporter=RecordingReporter())
        # Statistics are live while the run goes on (a commit may carry only tokens or folders,
        # so wait for bytes rather than for a number of commits).
        live = engine.run("session-1")
        assert live is not None
        await wait_until(lambda: live.statistics.transferred_data_bytes > 0)
        assert engine.is_active("session-1")
        assert await engine.stop_run("session-1")
        result = await task
        assert result.status is SessionStatus.STOPPED
        assert not engine.is_active("session-1")
        assert not await engine.stop_run("session-1")

        world.tenant.content_delay = 0.0
        second = RunRequest("session-2", "org-1", "contoso", JobScope(True))
        result = await (await engine.start_run(second, directory=world.tenant, reporter=RecordingReporter()))
        assert result.status is SessionStatus.SUCCESS
    finally:
        await engine.close()


async def test_closing_the_engine_stops_its_runs() -> None:
    world = org(users=2, items=50, page_size=2)
    world.tenant.content_delay = 0.005
    engine = BackupEngine(world.ports, clock=FakeClock(), threads=2)
    await engine.start()
    reporter = RecordingReporter()
    task = await engine.start_run(
        RunRequest("s", "org-1", "contoso", JobScope(True)), directory=world.tenant, reporter=reporter
    )
    await wait_until(lambda: world.catalog.commits >= 1)
    await engine.close()
    assert (await task).status is SessionStatus.STOPPED
    assert reporter.status is SessionStatus.STOPPED


class OneBadItem:
    """The connector gives up on one item for good (say, 403 on that file)."""

    def __init__(self, tenant: FakeTenant, bad: str) -> None:
        self.tenant, self.bad = tenant, bad

    async def collections(self, obj):
        return await self.tenant.collections(obj)

    def changes(self, obj, collection, token):
        return self.tenant.changes(obj, collection, token)

    async def content(self, obj, collection, change):
        if change.item_id == self.bad:
            raise ItemUnreadable("403 accessDenied")
        async for chunk in self.tenant.content(obj, collection, change):
            yield chunk


async def test_an_unreadable_item_is_skipped_with_a_warning_and_does_not_block_its_object() -> None:
    world = org(users=2, items=5)
    world.source = OneBadItem(world.tenant, "m-3")
    result, reporter = await backup(world, retry=RetryPolicy(retries=2, wait_minutes=0))
    assert result.status is SessionStatus.WARNING
    assert {r.status for r in result.objects} == {OutcomeStatus.WARNING}
    assert all(r.attempts == 1 for r in result.objects)  # permanent: not retried
    assert set(world.catalog.live_content(mailbox("u-0"), "inbox")) == {"m-0", "m-1", "m-2", "m-4"}
    warning = next(t for t in reporter.titles if "user0@contoso.com finished with warnings" in t)
    assert "4 items" in warning and "1 item could not be read: inbox/m-3: 403 accessDenied" in warning
    assert result.progress == 2


async def test_each_object_is_logged_and_counted_as_it_finishes_not_at_the_end_of_the_pass() -> None:
    world = org(users=2, items=20, page_size=5)
    world.tenant.content_delay = 0.005
    started = await start_backup(world, threads=1, retry=RetryPolicy(retries=1))
    await wait_until(lambda: any("Processing mailbox user0" in t for t in started.reporter.titles))
    assert not started.task.done()
    assert started.run.progress == 1
    assert (await started.result()).status is SessionStatus.SUCCESS


async def test_a_failing_log_write_does_not_abort_the_backup() -> None:
    class FlakyReporter(RecordingReporter):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        async def log(self, item) -> None:
            self.calls += 1
            if self.calls % 2 == 0:
                raise OSError("database is locked")
            await super().log(item)

    world = org(users=2)
    queue = InProcessQueue()
    reporter = FlakyReporter()
    run = BackupRun(
        RunRequest("r", "org-1", "contoso", JobScope(True)),
        directory=world.tenant,
        queue=queue,
        reporter=reporter,
        clock=FakeClock(),
    )
    async with ProxyWorkers(queue, world.ports, clock=FakeClock(), threads=2):
        result = await run.execute()
    assert result.status is SessionStatus.SUCCESS
    assert reporter.status is SessionStatus.SUCCESS
    assert len(world.catalog.live_content(mailbox("u-1"), "inbox")) == 6


async def test_the_last_log_item_sums_up_the_run() -> None:
    world = org(users=2, items=3, size=1024)
    _, reporter = await backup(world)
    assert reporter.titles[-1].endswith(": 2 of 2 objects processed, 6 items (6.0 KB) backed up, 0 removed")
