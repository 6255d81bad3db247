"""How long next_run and a scheduler tick take.

Peer: the obvious implementation, which reads the local clock at every whole minute after `after`
until one is due (what a cron-like loop does). Both answer the same questions in the same run and
their answers are compared, so the ratio is between two correct results.
"""

from __future__ import annotations

import asyncio
import random
import time as timer
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from m365vault.engine.schedule import (
    BackupWindow,
    DailyType,
    PeriodicallyEvery,
    SchedulePolicy,
    ScheduleType,
    next_run,
)
from m365vault.engine.scheduler import JobScheduleState, ScheduledJob, Scheduler

TZ = ZoneInfo("Europe/Berlin")
MINUTE = timedelta(minutes=1)


def minute_scan(policy: SchedulePolicy, after: datetime) -> datetime:
    """The peer: step whole minutes until the local clock shows a due time (no backup window)."""
    cursor = after.replace(second=0, microsecond=0) + MINUTE
    previous = (cursor - MINUTE).astimezone(TZ).replace(tzinfo=None)
    while True:
        wall = cursor.astimezone(TZ).replace(tzinfo=None)
        if policy.type is ScheduleType.PERIODICALLY:
            assert policy.periodically_every is not None
            if (wall.hour * 60 + wall.minute) % policy.periodically_every.minutes == 0:
                return cursor
        else:
            assert policy.daily_type is not None and policy.daily_time is not None
            target = datetime.combine(wall.date(), policy.daily_time)
            if wall.weekday() in policy.daily_type.weekdays() and previous < target <= wall:
                return cursor
        previous, cursor = wall, cursor + MINUTE


def sample_policies() -> list[SchedulePolicy]:
    policies = [SchedulePolicy(daily_type=day, daily_time=time(8, 30)) for day in DailyType]
    policies += [
        SchedulePolicy(type=ScheduleType.PERIODICALLY, periodically_every=p) for p in PeriodicallyEvery
    ]
    return policies


def time_calls(
    policies: list[SchedulePolicy], instants: list[datetime], use_peer: bool
) -> tuple[float, list[datetime]]:
    answers: list[datetime] = []
    started = timer.perf_counter()
    for policy, after in zip(policies, instants, strict=True):
        answers.append(minute_scan(policy, after) if use_peer else next_run(policy, after, TZ))  # type: ignore[arg-type]
    return timer.perf_counter() - started, answers


@dataclass
class Store:
    jobs: list[JobScheduleState]

    async def list_jobs(self) -> Sequence[ScheduledJob]:
        return self.jobs

    async def update_next_run(
        self, job_id: Hashable, expected: datetime | None, new: datetime | None
    ) -> bool:
        return True

    async def start_job(self, job_id: Hashable, due: datetime) -> None:
        return None


def main() -> None:
    rng = random.Random(6)
    print(f"seed 6, zone {TZ.key}")
    catalogue = sample_policies()
    calls = 1000
    policies = [rng.choice(catalogue) for _ in range(calls)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    instants = [start + timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(calls)]
    ours, our_answers = time_calls(policies, instants, use_peer=False)
    peer, peer_answers = time_calls(policies, instants, use_peer=True)
    assert our_answers == peer_answers, "next_run and the minute scan disagree"
    print(f"next_run, no window:   {ours / calls * 1e6:8.1f} us/call")
    print(f"minute-by-minute scan: {peer / calls * 1e6:8.1f} us/call  (peer; {peer / ours:.0f}x slower)")

    nights = BackupWindow(tuple(hour % 24 >= 22 or hour % 24 < 6 for hour in range(168)))
    windowed = SchedulePolicy(
        type=ScheduleType.PERIODICALLY,
        periodically_every=PeriodicallyEvery.MINUTES5,
        backup_window_enabled=True,
        backup_window=nights,
    )
    began = timer.perf_counter()
    for after in instants[:500]:
        next_run(windowed, after, TZ)
    print(f"next_run, Minutes5 in a night window: {(timer.perf_counter() - began) / 500 * 1e6:8.1f} us/call")

    # A tick over many jobs that are not due costs one list call and a comparison per job.
    now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    jobs = [
        JobScheduleState(f"job-{i}", True, rng.choice(catalogue), next_run=now + timedelta(hours=1))
        for i in range(10_000)
    ]
    scheduler = Scheduler(Store(jobs), TZ, clock=lambda: now)
    asyncio.run(scheduler.tick())  # first sight: the scheduler records each job's policy
    began = timer.perf_counter()
    asyncio.run(scheduler.tick())
    print(f"scheduler tick, 10,000 jobs none due: {(timer.perf_counter() - began) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
