"""The Scheduler loop in virtual time: fires due jobs once, never disabled ones, never twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from m365vault.engine.schedule import BackupWindow, PeriodicallyEvery, SchedulePolicy, ScheduleType, next_run
from m365vault.engine.scheduler import JobScheduleState, ScheduledJob, Scheduler
from tests.support.virtual_time import VirtualTime

# A scheduler bug tends to show as a busy loop in virtual time; fail it fast instead of hanging.
pytestmark = pytest.mark.timeout(30)

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 6, 3, 6, 30, tzinfo=UTC)  # Wednesday 08:30 in Berlin
DAILY_9 = SchedulePolicy(daily_time=time(9, 0))  # every day 09:00 Berlin = 07:00 UTC in summer
EVERY_5 = SchedulePolicy(type=ScheduleType.PERIODICALLY, periodically_every=PeriodicallyEvery.MINUTES5)


@dataclass
class FakeJob:
    id: str
    is_enabled: bool
    schedule_policy: SchedulePolicy
    last_run: datetime | None = None
    next_run: datetime | None = None
    is_running: bool = False


@dataclass
class FakeStore:
    """An in-memory job store honouring the ScheduledJobs contract (compare-and-set included)."""

    clock: Callable[[], datetime]
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    starts: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    runs_finish_at_once: bool = True
    failing_starts: set[str] = field(default_factory=set)
    list_failures: int = 0
    list_calls: int = 0

    def add(self, job_id: str, policy: SchedulePolicy, enabled: bool = True, **fields: object) -> FakeJob:
        job = FakeJob(job_id, enabled, policy, **fields)  # type: ignore[arg-type]
        self.jobs[job_id] = job
        return job

    async def list_jobs(self) -> Sequence[ScheduledJob]:
        self.list_calls += 1
        if self.list_failures:
            self.list_failures -= 1
            raise ConnectionError("database is down")
        snapshot = [replace(job) for job in self.jobs.values()]  # values, as rows would be
        await asyncio.sleep(0)  # a real query yields; lets two schedulers read the same state
        return snapshot

    async def update_next_run(
        self, job_id: Hashable, expected: datetime | None, new: datetime | None
    ) -> bool:
        job = self.jobs[str(job_id)]
        if job.next_run != expected:
            return False
        job.next_run = new
        return True

    async def start_job(self, job_id: Hashable, due: datetime) -> None:
        if job_id in self.failing_starts:
            raise RuntimeError("repository is offline")
        job = self.jobs[str(job_id)]
        self.starts.append((job.id, due, self.clock()))
        job.last_run = self.clock()
        job.is_running = not self.runs_finish_at_once

    def started(self, job_id: str) -> list[datetime]:
        return [due for started_id, due, _ in self.starts if started_id == job_id]


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime(START)


@pytest.fixture
def store(vt: VirtualTime) -> FakeStore:
    return FakeStore(vt.now)


@asynccontextmanager
async def running(scheduler: Scheduler, vt: VirtualTime) -> AsyncIterator[Scheduler]:
    task = asyncio.create_task(scheduler.run())
    await vt.settle()
    try:
        yield scheduler
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def make_scheduler(store: FakeStore, vt: VirtualTime, poll: timedelta = timedelta(minutes=1)) -> Scheduler:
    return Scheduler(store, BERLIN, clock=vt.now, sleep=vt.sleep, poll_interval=poll)


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC)


async def test_enabled_daily_job_fires_at_each_due_time_exactly(store: FakeStore, vt: VirtualTime) -> None:
    store.add("daily", DAILY_9)
    async with running(make_scheduler(store, vt, poll=timedelta(hours=1)), vt):
        assert store.jobs["daily"].next_run == berlin("2026-06-03 09:00")  # nextRun shown before the run
        await vt.advance(timedelta(days=3))
    expected = [berlin(f"2026-06-0{day} 09:00") for day in (3, 4, 5)]
    assert store.started("daily") == expected
    assert [at for _, _, at in store.starts] == expected  # started at the due instant, not late
    assert store.jobs["daily"].next_run == berlin("2026-06-06 09:00")


async def test_disabled_job_never_fires_and_shows_no_next_run(store: FakeStore, vt: VirtualTime) -> None:
    store.add("off", EVERY_5, enabled=False, next_run=START + timedelta(minutes=1))
    async with running(make_scheduler(store, vt), vt):
        await vt.advance(timedelta(hours=3))
    assert store.started("off") == []
    assert store.jobs["off"].next_run is None


async def test_a_running_job_is_not_started_again(store: FakeStore, vt: VirtualTime) -> None:
    store.runs_finish_at_once = False
    store.add("busy", EVERY_5)
    async with running(make_scheduler(store, vt), vt):
        await vt.advance(timedelta(minutes=31))
        assert store.started("busy") == [START + timedelta(minutes=5)]
        assert store.jobs["busy"].next_run == START + timedelta(minutes=35)  # skipped ones move on
        store.jobs["busy"].is_running = False  # the run ends
        await vt.advance(timedelta(minutes=5))
    assert store.started("busy") == [START + timedelta(minutes=5), START + timedelta(minutes=35)]


async def test_restart_does_not_fire_the_same_due_time_twice(store: FakeStore, vt: VirtualTime) -> None:
    store.add("daily", DAILY_9)
    async with running(make_scheduler(store, vt), vt):
        await vt.advance_to(berlin("2026-06-03 09:00"))
    assert store.started("daily") == [berlin("2026-06-03 09:00")]
    # The server restarts in the same second: a fresh scheduler with no memory of the run.
    async with running(make_scheduler(store, vt), vt):
        await vt.advance(timedelta(hours=1))
    assert store.started("daily") == [berlin("2026-06-03 09:00")]
    assert store.jobs["daily"].next_run == berlin("2026-06-04 09:00")


async def test_crash_between_claim_and_start_misses_rather_than_doubles(
    store: FakeStore, vt: VirtualTime
) -> None:
    store.add("daily", DAILY_9)
    store.failing_starts.add("daily")  # the claim is persisted, the start never happens
    async with running(make_scheduler(store, vt), vt):
        await vt.advance_to(berlin("2026-06-03 09:00"))
    store.failing_starts.clear()
    async with running(make_scheduler(store, vt), vt):
        await vt.advance_to(berlin("2026-06-04 09:30"))
    assert store.started("daily") == [berlin("2026-06-04 09:00")]


async def test_due_times_missed_while_down_fire_once_at_start_up(store: FakeStore, vt: VirtualTime) -> None:
    store.add("periodic", EVERY_5, next_run=START - timedelta(hours=5))  # an hour's worth missed, 60 slots
    async with running(make_scheduler(store, vt), vt):
        assert store.starts == [("periodic", START - timedelta(hours=5), START)]
        assert store.jobs["periodic"].next_run == START + timedelta(minutes=5)
        await vt.advance(timedelta(minutes=5))
    assert store.started("periodic") == [START - timedelta(hours=5), START + timedelta(minutes=5)]


async def test_missed_due_time_is_not_caught_up_outside_the_window(store: FakeStore, vt: VirtualTime) -> None:
    nights = BackupWindow(tuple(hour % 24 >= 22 or hour % 24 < 6 for hour in range(168)))
    policy = SchedulePolicy(
        daily_time=time(23, 0), backup_window_enabled=True, backup_window=nights
    )  # 23:00 Berlin, permitted
    store.add("nightly", policy, next_run=berlin("2026-06-02 23:00"))  # missed last night; now 08:30
    async with running(make_scheduler(store, vt), vt):
        assert store.starts == []
        assert store.jobs["nightly"].next_run == berlin("2026-06-03 23:00")
        await vt.advance_to(berlin("2026-06-03 23:00"))
    assert store.started("nightly") == [berlin("2026-06-03 23:00")]


async def test_two_schedulers_on_one_store_fire_each_due_time_once(store: FakeStore, vt: VirtualTime) -> None:
    store.add("periodic", EVERY_5)
    store.add("daily", DAILY_9)
    async with running(make_scheduler(store, vt), vt), running(make_scheduler(store, vt), vt):
        await vt.advance(timedelta(hours=2))
    assert store.started("periodic") == [START + timedelta(minutes=5 * k) for k in range(1, 25)]
    assert store.started("daily") == [berlin("2026-06-03 09:00")]


async def test_racing_schedulers_start_a_due_time_once(store: FakeStore, vt: VirtualTime) -> None:
    due = START + timedelta(minutes=5)
    store.add("periodic", EVERY_5, next_run=due)
    vt.clock.set(due)
    first, second = make_scheduler(store, vt), make_scheduler(store, vt)
    await asyncio.gather(first.tick(), second.tick())  # both read nextRun == due before either claims
    assert store.started("periodic") == [due]
    assert store.jobs["periodic"].next_run == due + timedelta(minutes=5)


async def test_wake_schedules_a_newly_enabled_job_at_once(store: FakeStore, vt: VirtualTime) -> None:
    job = store.add("late", DAILY_9, enabled=False)
    scheduler = make_scheduler(store, vt)
    async with running(scheduler, vt):
        await vt.advance(timedelta(seconds=5))
        job.is_enabled = True
        scheduler.wake()
        await vt.settle()  # no virtual time passes
        assert job.next_run == berlin("2026-06-03 09:00")
        calls = store.list_calls
        await vt.advance_to(berlin("2026-06-03 09:00"))
        assert store.list_calls - calls <= 32  # after the wake it sleeps again, one read a minute
    assert store.started("late") == [berlin("2026-06-03 09:00")]


async def test_enabling_does_not_fire_a_time_that_passed_while_disabled(
    store: FakeStore, vt: VirtualTime
) -> None:
    job = store.add("daily", DAILY_9)
    scheduler = make_scheduler(store, vt)
    async with running(scheduler, vt):
        job.is_enabled = False
        scheduler.wake()
        await vt.advance_to(berlin("2026-06-03 10:00"))
        job.is_enabled = True
        scheduler.wake()
        await vt.settle()
        assert job.next_run == berlin("2026-06-04 09:00")
    assert store.starts == []


async def test_a_changed_policy_recomputes_next_run(store: FakeStore, vt: VirtualTime) -> None:
    job = store.add("daily", DAILY_9)
    scheduler = make_scheduler(store, vt)
    async with running(scheduler, vt):
        assert job.next_run == berlin("2026-06-03 09:00")
        job.schedule_policy = SchedulePolicy(daily_time=time(12, 0))  # nextRun left stale on purpose
        scheduler.wake()
        await vt.settle()
        assert job.next_run == berlin("2026-06-03 12:00")
        await vt.advance_to(berlin("2026-06-03 12:30"))
    assert store.started("daily") == [berlin("2026-06-03 12:00")]


async def test_a_manual_run_at_the_due_time_serves_it(store: FakeStore, vt: VirtualTime) -> None:
    due = berlin("2026-06-03 09:00")
    store.add("daily", DAILY_9, next_run=due, last_run=due + timedelta(seconds=3))
    vt.clock.set(due + timedelta(seconds=10))  # the scheduler comes late, after the manual start
    async with running(make_scheduler(store, vt), vt):
        pass
    assert store.starts == []
    assert store.jobs["daily"].next_run == berlin("2026-06-04 09:00")


async def test_one_failing_job_does_not_stop_the_others(store: FakeStore, vt: VirtualTime) -> None:
    store.add("broken", EVERY_5)
    store.add("fine", EVERY_5)
    store.failing_starts.add("broken")
    async with running(make_scheduler(store, vt), vt):
        await vt.advance(timedelta(minutes=10))
    assert store.started("fine") == [START + timedelta(minutes=5), START + timedelta(minutes=10)]


async def test_the_loop_survives_a_store_outage(store: FakeStore, vt: VirtualTime) -> None:
    store.add("periodic", EVERY_5)
    store.list_failures = 2
    async with running(make_scheduler(store, vt), vt):
        await vt.advance(timedelta(minutes=1))  # two failed reads, one poll interval apart
        assert store.list_calls == 2
        await vt.advance(timedelta(minutes=1))
        assert store.jobs["periodic"].next_run == START + timedelta(minutes=5)
        await vt.advance(timedelta(minutes=3))
    assert store.started("periodic") == [START + timedelta(minutes=5)]


async def test_it_sleeps_until_the_next_due_time_or_the_poll_interval(
    store: FakeStore, vt: VirtualTime
) -> None:
    store.add("daily", DAILY_9)
    async with running(make_scheduler(store, vt), vt):
        calls = store.list_calls
        await vt.advance(timedelta(minutes=10))
        assert store.list_calls - calls == 10  # re-reads once a minute, not in a busy loop
        assert vt.sleepers == 1


async def test_naive_stored_times_are_read_as_utc(store: FakeStore, vt: VirtualTime) -> None:
    due = berlin("2026-06-03 09:00")
    store.add("daily", DAILY_9, next_run=due.replace(tzinfo=None))  # as SQLite returns it
    async with running(make_scheduler(store, vt), vt):
        await vt.advance_to(due)
    assert store.started("daily") == [due]


async def test_tick_alone_is_usable_without_the_loop(store: FakeStore, vt: VirtualTime) -> None:
    store.add("daily", DAILY_9)
    scheduler = make_scheduler(store, vt)
    assert await scheduler.tick() == berlin("2026-06-03 09:00")
    vt.clock.set(berlin("2026-06-03 09:00"))
    assert await scheduler.tick() == berlin("2026-06-04 09:00")
    assert store.started("daily") == [berlin("2026-06-03 09:00")]


def test_job_schedule_state_is_a_scheduled_job() -> None:
    state: ScheduledJob = JobScheduleState("j", True, DAILY_9)
    assert next_run(state.schedule_policy, START, BERLIN) == berlin("2026-06-03 09:00")


async def test_the_loop_follows_dst_changes_in_the_server_zone() -> None:
    vt = VirtualTime(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    store = FakeStore(vt.now)
    store.add("night", SchedulePolicy(daily_time=time(2, 30)))
    async with running(make_scheduler(store, vt, poll=timedelta(hours=1)), vt):
        await vt.advance(timedelta(days=2))
        vt.clock.set(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))  # the clock jumps; the loop copes
        await vt.advance(timedelta(days=2))
    assert [due.astimezone(BERLIN).isoformat() for due in store.started("night")] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist: first valid moment after the jump
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",  # the due time persisted before the jump, caught up once
        "2026-10-25T02:30:00+02:00",  # the repeated hour: first pass only
        "2026-10-26T02:30:00+01:00",
    ]
