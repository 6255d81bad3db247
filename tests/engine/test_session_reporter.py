"""The session reporter writes log items and progress behind the run, in group commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from m365vault.db.config_tables import JobSession, JobSessionLogItem
from m365vault.db.migrate import upgrade
from m365vault.engine.adapters.reporter import DbSessionReporter
from m365vault.engine.ports import LogItem, LogStatus, SessionStatistics, SessionStatus

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


async def test_logs_told_during_a_write_share_the_next_one_in_order_and_finish_writes_the_rest(
    tmp_path,
) -> None:
    # A bare session row: no job, organization or repository rows (no foreign keys enforced here).
    engine = create_engine(f"sqlite:///{tmp_path / 'config.db'}")
    upgrade(engine)
    sessions = sessionmaker(engine, class_=Session)
    session_id = uuid.uuid4()
    with sessions.begin() as db:
        db.add(JobSession(id=session_id, job_id=uuid.uuid4(), status="Running", creation_time=NOW))
    commits = 0

    def counted(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine, "commit", counted)
    reporter = DbSessionReporter(sessions, session_id)
    for n in range(50):  # fifty objects end at once; none of them waits for the database
        await reporter.log(LogItem(LogStatus.SUCCESS, f"[Success] object {n}", NOW, NOW))
        await reporter.progress(n + 1, SessionStatistics())
    await reporter.drain()
    assert 1 <= commits <= 3  # the first write alone, then everything told meanwhile
    with sessions() as db:
        titles = db.scalars(
            select(JobSessionLogItem.title)
            .where(JobSessionLogItem.session_id == session_id)
            .order_by(JobSessionLogItem.usn)
        ).all()
        assert titles == [f"[Success] object {n}" for n in range(50)]
        assert db.get(JobSession, session_id).progress == 50  # type: ignore[union-attr]

    await reporter.log(LogItem(LogStatus.SUCCESS, "[Success] Job finished", NOW, NOW))
    await reporter.finish(SessionStatus.SUCCESS, NOW)
    with sessions() as db:
        row = db.get(JobSession, session_id)
        assert row is not None and row.status == "Success" and row.end_time is not None
        last = db.scalars(select(JobSessionLogItem.title).order_by(JobSessionLogItem.usn.desc())).first()
        assert last == "[Success] Job finished"
    engine.dispose()
