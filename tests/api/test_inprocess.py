"""In-process tests (in addition to the real-server ones): a fake clock for token expiry and
throttling windows, and fake ports to show how the connector, the engine and the repository plug in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from m365vault.api.app import create_app
from m365vault.bootstrap import Ports, ServerConfig, build_control, ensure_defaults, open_database
from m365vault.clock import FakeClock
from m365vault.control.accounts import ThrottlePolicy
from m365vault.control.ports import (
    TenantCredentials,
    TenantObject,
    TenantPage,
)
from m365vault.db.config_tables import BackupRepository, Job, JobSession, Organization
from tests.api.builders import org_body, user_item

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
PASSWORD = "In-Process-Pass-1"


@dataclass
class FakeVerifier:
    seen: list[TenantCredentials] = field(default_factory=list)

    async def verify(self, credentials: TenantCredentials) -> str | None:
        self.seen.append(credentials)
        return "AADSTS7000215: invalid client secret" if credentials.application_secret == "refused" else None


@dataclass
class FakeDirectory:
    async def list_objects(
        self, credentials: TenantCredentials, kind: str, offset: int, limit: int, parent_id: str | None = None
    ) -> TenantPage:
        people = [
            TenantObject(id=f"u{i}", name=f"u{i}@x", display_name=f"User {i}", extra={"type": "User"})
            for i in range(5)
        ]
        return TenantPage(items=people[offset : offset + limit], total=len(people))


@dataclass
class FakeRunner:
    """Stands in for the engine: opens a Running session on start, ends it Stopped on stop."""

    sessions: sessionmaker[Session]
    clock: FakeClock
    calls: list[tuple[str, uuid.UUID]] = field(default_factory=list)

    refuse: str | None = None

    async def start(self, job_id: uuid.UUID) -> uuid.UUID:
        if self.refuse:
            raise ValueError(self.refuse)
        self.calls.append(("start", job_id))
        session_id = uuid.uuid4()
        with self.sessions.begin() as db:
            db.add(
                JobSession(
                    id=session_id, job_id=job_id, status="Running", creation_time=self.clock(), statistics={}
                )
            )
            db.execute(
                update(Job).where(Job.id == job_id).values(last_status="Running", last_run=self.clock())
            )
        return session_id

    async def stop(self, job_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self.calls.append(("stop", session_id))
        with self.sessions.begin() as db:
            db.execute(
                update(JobSession)
                .where(JobSession.id == session_id)
                .values(status="Stopped", end_time=self.clock())
            )
            db.execute(update(Job).where(Job.id == job_id).values(last_status="Stopped"))


@dataclass
class FakeInitialiser:
    calls: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)

    def initialise(self, repository_id: uuid.UUID, path: str, password: str) -> None:
        if "forbidden" in path:
            raise ValueError("permission denied")
        self.calls.append((repository_id, path, password))


@dataclass
class World:
    client: TestClient
    clock: FakeClock
    verifier: FakeVerifier
    runner: FakeRunner
    initialiser: FakeInitialiser
    sessions: sessionmaker[Session]

    def login(self, user: str = "admin", password: str = PASSWORD) -> dict[str, Any]:
        r = self.client.post(
            "/v3/Token", data={"grant_type": "password", "username": user, "password": password}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login()['access_token']}"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(START)
    verifier, initialiser = FakeVerifier(), FakeInitialiser()
    config = ServerConfig(
        data_dir=tmp_path,
        clock=clock,
        throttle=ThrottlePolicy(account_failures=3, address_failures=6, window=timedelta(minutes=15)),
        # Cheap argon2 parameters: these tests are about tokens and throttling, not hash strength.
        password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    engine = open_database(config)
    sessions = sessionmaker(engine, expire_on_commit=False)
    runner = FakeRunner(sessions, clock)
    config.ports = Ports(
        tenant_verifier=verifier,
        tenant_directory=FakeDirectory(),
        backup_runner=runner,
        repository_initialiser=initialiser,
    )
    control = build_control(config, engine)
    ensure_defaults(control, tmp_path, "admin", PASSWORD)
    with TestClient(create_app(control), base_url="https://vbo.example:4443") as client:
        yield World(client, clock, verifier, runner, initialiser, sessions)
    engine.dispose()


def test_access_token_expires_after_60_minutes_refresh_lives_longer(world: World) -> None:
    tokens = world.login()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    world.clock.advance(timedelta(minutes=59))
    assert world.client.get("/v3/Jobs", headers=bearer).status_code == 200
    world.clock.advance(timedelta(minutes=1))
    assert world.client.get("/v3/Jobs", headers=bearer).status_code == 401
    r = world.client.post(
        "/v3/Token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert r.status_code == 200
    assert r.json()[".issued"] == "Mon, 02 Mar 2026 11:00:00 GMT"
    fresh = r.json()
    world.clock.advance(timedelta(days=15))
    r = world.client.post(
        "/v3/Token", data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_account_lock_ends_after_the_lockout(world: World) -> None:
    for _ in range(3):
        r = world.client.post(
            "/v3/Token", data={"grant_type": "password", "username": "admin", "password": "nope"}
        )
        assert r.status_code == 400
    r = world.client.post(
        "/v3/Token", data={"grant_type": "password", "username": "admin", "password": PASSWORD}
    )
    assert r.status_code == 429 and r.headers["retry-after"] == str(15 * 60)
    world.clock.advance(timedelta(minutes=15, seconds=1))
    world.login()


def test_address_throttle_covers_many_accounts(world: World) -> None:
    for i in range(6):
        r = world.client.post(
            "/v3/Token", data={"grant_type": "password", "username": f"user{i}", "password": "x"}
        )
        assert r.status_code == 400
    r = world.client.post(
        "/v3/Token", data={"grant_type": "password", "username": "admin", "password": PASSWORD}
    )
    assert r.status_code == 429
    # Failures spread over more than the window never add up to a lock.
    world.clock.advance(timedelta(minutes=16))
    world.login()


def test_failures_outside_the_window_do_not_lock(world: World) -> None:
    for _ in range(2):
        world.client.post(
            "/v3/Token", data={"grant_type": "password", "username": "admin", "password": "nope"}
        )
    world.clock.advance(timedelta(minutes=16))
    for _ in range(2):
        world.client.post(
            "/v3/Token", data={"grant_type": "password", "username": "admin", "password": "nope"}
        )
    world.login()


def test_organization_credentials_are_verified_by_the_wired_verifier(world: World) -> None:
    auth = world.auth()
    refused = org_body(secret="refused")
    r = world.client.post("/v3/Organizations", json=refused, headers=auth)
    assert r.status_code == 400 and "AADSTS7000215" in r.json()["message"]
    assert world.client.get("/v3/Organizations", headers=auth).json() == []
    body = org_body(secret="accepted-secret")
    body["authorityEndpoint"] = "http://127.0.0.1:1/authority"
    r = world.client.post("/v3/Organizations", json=body, headers=auth)
    assert r.status_code == 201
    seen = world.verifier.seen[-1]
    assert (
        seen.application_secret == "accepted-secret"
        and seen.authority_endpoint == "http://127.0.0.1:1/authority"
    )
    assert "accepted-secret" not in repr(seen)
    # An edit is verified again, with the stored secret when none is given.
    org_id = r.json()["id"]
    assert (
        world.client.put(f"/v3/Organizations/{org_id}", json={"region": "Germany"}, headers=auth).status_code
        == 200
    )
    assert (
        world.verifier.seen[-1].application_secret == "accepted-secret"
        and world.verifier.seen[-1].region == "Germany"
    )
    # A duplicate is refused without bothering the tenant.
    asked = len(world.verifier.seen)
    assert world.client.post("/v3/Organizations", json=body, headers=auth).status_code == 400
    assert len(world.verifier.seen) == asked
    users = world.client.get(f"/v3/Organizations/{org_id}/Users", params={"limit": 2}, headers=auth).json()
    assert [u["id"] for u in users["results"]] == ["u0", "u1"] and "next" in users["_links"]
    assert users["results"][0]["_links"]["onedrives"]["href"].endswith(
        f"/organizations/{org_id}/users/u0/onedrives"
    )


def _job(world: World, auth: dict[str, str], **extra: Any) -> dict[str, Any]:
    org = world.client.post("/v3/Organizations", json=org_body(), headers=auth).json()
    repo = world.client.get("/v3/BackupRepositories", headers=auth).json()[0]
    body = {
        "name": f"j-{uuid.uuid4().hex[:6]}",
        "backupType": "SelectedItems",
        "repositoryId": repo["id"],
        "selectedItems": [user_item()],
        **extra,
    }
    r = world.client.post(f"/v3/Organizations/{org['id']}/Jobs", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_start_and_stop_go_to_the_backup_runner(world: World) -> None:
    auth = world.auth()
    job = _job(world, auth)
    assert (
        world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"disable": None}, headers=auth).status_code
        == 200
    )
    r = world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"start": None}, headers=auth)
    assert r.status_code == 200 and r.content == b""  # a disabled job may still be run by hand
    assert world.runner.calls == [("start", uuid.UUID(job["id"]))]
    got = world.client.get(f"/v3/Jobs/{job['id']}", headers=auth).json()
    assert got["lastStatus"] == "Running" and got["lastRun"] == "2026-03-02T10:00:00.0000000Z"
    r = world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"start": None}, headers=auth)
    assert r.status_code == 400 and "already running" in r.json()["message"]
    assert world.client.delete(f"/v3/Jobs/{job['id']}", headers=auth).status_code == 400
    r = world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"stop": None}, headers=auth)
    assert r.status_code == 200 and r.content == b""
    assert world.runner.calls[-1][0] == "stop"
    r = world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"stop": None}, headers=auth)
    assert r.status_code == 400
    assert world.client.get(f"/v3/Jobs/{job['id']}", headers=auth).json()["lastStatus"] == "Stopped"
    assert world.client.delete(f"/v3/Jobs/{job['id']}", headers=auth).status_code == 200


def test_run_now_starts_the_new_job(world: World) -> None:
    auth = world.auth()
    job = _job(world, auth, runNow="true")
    assert world.runner.calls == [("start", uuid.UUID(job["id"]))]


def test_next_run_follows_the_schedule_and_the_clock(world: World) -> None:
    auth = world.auth()
    job = _job(
        world, auth, schedulePolicy={"type": "Daily", "dailyType": "Weekends", "dailyTime": "09:00:00"}
    )
    assert job["nextRun"] == "2026-03-07T09:00:00.0000000Z"  # the Saturday after Monday 2 March
    world.clock.advance(timedelta(minutes=7))
    policy = {"schedulePolicy": {"type": "Periodically", "periodicallyEvery": "Minutes30"}}
    assert world.client.put(f"/v3/Jobs/{job['id']}", json=policy, headers=auth).status_code == 200
    assert (
        world.client.get(f"/v3/Jobs/{job['id']}", headers=auth).json()["nextRun"]
        == "2026-03-02T10:30:00.0000000Z"
    )


def test_repository_initialiser_gets_the_password(world: World, tmp_path: Path) -> None:
    auth = world.auth()
    # The default repository of the first start went through the initialiser too.
    assert [c[1] for c in world.initialiser.calls] == [str((tmp_path / "repository").resolve())]
    r = world.client.post(
        "/v3/BackupRepositories",
        json={"name": "r2", "path": str(tmp_path / "r2"), "password": "given-pass"},
        headers=auth,
    )
    assert r.status_code == 201
    repo_id, path, password = world.initialiser.calls[-1]
    assert str(repo_id) == r.json()["id"] and path == str(tmp_path / "r2") and password == "given-pass"
    r = world.client.post(
        "/v3/BackupRepositories", json={"name": "r3", "path": str(tmp_path / "forbidden")}, headers=auth
    )
    assert r.status_code == 400 and "permission denied" in r.json()["message"]
    with world.sessions.begin() as db:
        assert db.scalar(select(BackupRepository.id).where(BackupRepository.name == "r3")) is None


def test_organization_row_never_holds_plaintext(world: World) -> None:
    auth = world.auth()
    world.client.post("/v3/Organizations", json=org_body(secret="row-secret-xyz"), headers=auth)
    with world.sessions.begin() as db:
        org = db.scalars(select(Organization)).one()
        assert org.application_secret_sealed and b"row-secret-xyz" not in org.application_secret_sealed


def test_new_password_ends_the_accounts_sessions(world: World) -> None:
    tokens = world.login()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert world.client.get("/v3/Jobs", headers=bearer).status_code == 200
    control = world.client.app.state.control  # type: ignore[attr-defined]
    control.accounts.set_password("ADMIN", "Another-Pass-2")
    assert world.client.get("/v3/Jobs", headers=bearer).status_code == 401
    r = world.client.post(
        "/v3/Token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert r.status_code == 400
    world.login(password="Another-Pass-2")


def test_stop_before_engine_check_and_explore_on_unknown_org(world: World) -> None:
    auth = world.auth()
    job = _job(world, auth)
    r = world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"stop": None}, headers=auth)
    assert r.status_code == 400 and world.runner.calls == []
    r = world.client.post(
        f"/v3/Organizations/{uuid.uuid4()}/Action", json={"explore": {"type": "vex"}}, headers=auth
    )
    assert r.status_code == 404


def test_a_runner_refusal_is_a_400(world: World) -> None:
    auth = world.auth()
    job = _job(world, auth)
    world.runner.refuse = "Job is already running."
    r = world.client.post(f"/v3/Jobs/{job['id']}/Action", json={"start": None}, headers=auth)
    assert r.status_code == 400 and r.json() == {"message": "Job is already running."}
