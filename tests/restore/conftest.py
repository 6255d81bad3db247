"""Fixtures of the restore-session suite: the server in process (fake clock) on SQLite and
PostgreSQL with a synthetic tenant backed up at three points in time into the real catalog and a
real repository."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from m365vault.bootstrap import RestoreOptions, ServerConfig, build_app
from m365vault.catalog import EntryKind, ObjectKind
from m365vault.clock import FakeClock
from m365vault.db.engine import make_engine
from m365vault.repository import KdfParams, Repository
from m365vault.repository.backends.location import open_backend
from tests.restore.backup import Backup, Entry, make_mime
from tests.support.postgres import temporary_database

T1 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
T3 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
ADMIN, PASSWORD = "admin", "Restore-Suite-Pass-1"
BIG = bytes(range(256)) * 1200  # 300 KiB, several repository chunks

# Content the tests compare outputs against.
MIME = {
    "m1": make_mime("Hello", "First mail.\n"),
    "m2": make_mime("Budget", "Numbers v1.\n"),
    "m2b": make_mime("Budget v2", "Numbers v2.\n"),
    "m3": make_mime("Plan", "See attachment.\n", attachment=BIG),
    "m4": make_mime("Late", "Arrived on day two.\n"),
    "m5": make_mime("Sent one", "Outgoing.\n", sender="alice@contoso.com", to="carol@example.com"),
    "am1": make_mime("Archived", "Old stuff.\n"),
}
FILES = {
    "a1": b"version one",
    "a2": b"version two, longer",
    "b": BIG,
    "doc1": b"spec " * 100,
    "doc2": b"q1 numbers",
}


def org_body(
    name: str, graph: str | None = None, client_id: str | None = None, secret: str = "secret"
) -> dict[str, Any]:
    settings = {
        "useApplicationOnlyAuth": "true",
        "officeOrganizationName": name,
        "applicationId": client_id or str(uuid.uuid4()),
        "applicationSecret": secret,
    }
    body: dict[str, Any] = {
        "type": "office365",
        "region": "worldwide",
        "isExchangeOnline": "true",
        "isSharePointOnline": "true",
        "exchangeOnlineSettings": settings,
        "sharePointOnlineSettings": dict(settings),
    }
    if graph:
        body["graphEndpoint"] = graph
        body["authorityEndpoint"] = graph
    return body


@dataclass
class Env:
    client: TestClient
    clock: FakeClock
    org_id: str
    repository_id: str
    repository_path: str
    repository_password: str
    db_url: str
    tokens: dict[str, str]

    def explore(self, kind: str = "vex", at: datetime | None = None, **flags: Any) -> str:
        body: dict[str, Any] = {"type": kind, **flags}
        if at is not None:
            body["datetime"] = at.isoformat()
        r = self.client.post(f"/v3/Organizations/{self.org_id}/Action", json={"explore": body})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def relogin(self) -> None:
        """A new access token (after the fake clock passed the old one's hour)."""
        r = self.client.post(
            "/v3/Token", data={"grant_type": "password", "username": ADMIN, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        self.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()


def start_env(
    tmp: Path, db_url: str, graph_verify: bool | str = True, org: dict[str, Any] | None = None
) -> tuple[TestClient, FakeClock, dict[str, str]]:
    clock = FakeClock(NOW)
    config = ServerConfig(
        data_dir=tmp / "data",
        db_url=db_url,
        clock=clock,
        restore=RestoreOptions(idle_timeout=timedelta(minutes=30), graph_verify=graph_verify),
    )
    app, _ = build_app(config, ADMIN, PASSWORD)
    client = TestClient(app, base_url="https://testserver")
    client.__enter__()
    r = client.post("/v3/Token", data={"grant_type": "password", "username": ADMIN, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return client, clock, r.json()


def default_repository(client: TestClient, control: Any) -> tuple[str, str, str]:
    repos = client.get("/v3/BackupRepositories").json()
    repo = repos[0]
    password = control.repositories.password(uuid.UUID(repo["id"]))
    return repo["id"], repo["path"], password


async def init_repository(path: str, password: str) -> Repository:
    return await Repository.init(await open_backend(path), password, kdf=KdfParams.for_tests())


async def backup_synthetic(db_url: str, org_id: str, repo_id: str, path: str, password: str) -> None:
    """The synthetic tenant at T1, T2, T3 (see the module constants for what changes)."""
    engine = make_engine(db_url)
    repo = await init_repository(path, password)
    try:
        b = Backup(engine, repo, org_id, repo_id)
        await _mail(b)
        await _files(b)
        await _sites(b)
    finally:
        await repo.close()
        engine.dispose()


def _graph_json(item: dict[str, Any]) -> bytes:
    """Calendar items, contacts and list items are backed up as their Graph JSON (as the engine does)."""
    return json.dumps(item, sort_keys=True).encode()


def _mail_entry(eid: str, parent: str, mime_key: str, subject: str, at: datetime) -> Entry:
    return Entry(
        eid,
        EntryKind.ITEM,
        parent,
        MIME[mime_key],
        subject=subject,
        item_class="IPM.Note",
        sender="alice@contoso.com",
        to=("bob@contoso.com",),
        received_at=at,
    )


async def _mail(b: Backup) -> None:
    alice = b.object(ObjectKind.MAILBOX, "u-alice", T1, name="Alice", email="alice@contoso.com")
    folder = EntryKind.FOLDER
    await b.page(
        alice,
        T1,
        [
            Entry("f-inbox", folder, None, name="Inbox", item_class="Mail"),
            Entry("f-sent", folder, None, name="Sent Items", item_class="Mail"),
            Entry("f-proj", folder, "f-inbox", name="Projects", item_class="Mail"),
            Entry("f-cal", folder, None, name="Calendar", item_class="Calendar"),
            Entry("f-con", folder, None, name="Contacts", item_class="Contacts"),
            _mail_entry("m1", "f-inbox", "m1", "Hello", T1),
            _mail_entry("m2", "f-inbox", "m2", "Budget", T1),
            _mail_entry("m3", "f-proj", "m3", "Plan", T1),
            _mail_entry("m5", "f-sent", "m5", "Sent one", T1),
            Entry(
                "e1",
                EntryKind.ITEM,
                "f-cal",
                _graph_json(
                    {
                        "id": "e1",
                        "subject": "Review",
                        "start": {"dateTime": "2026-03-10T09:00:00.0000000", "timeZone": "UTC"},
                        "end": {"dateTime": "2026-03-10T10:00:00.0000000", "timeZone": "UTC"},
                        "location": {"displayName": "Room 1"},
                        "attendees": [{"emailAddress": {"address": "bob@contoso.com"}, "type": "required"}],
                    }
                ),
                subject="Review",
                item_class="IPM.Appointment",
                extras={
                    "organizer": "alice@contoso.com",
                    "location": "Room 1",
                    "startTime": "2026-03-10T09:00:00Z",
                    "endTime": "2026-03-10T10:00:00Z",
                    "attendees": "bob@contoso.com",
                },
            ),
            Entry(
                "c1",
                EntryKind.ITEM,
                "f-con",
                _graph_json(
                    {
                        "id": "c1",
                        "displayName": "Dan Smith",
                        "emailAddresses": [{"address": "dan@example.com", "name": "Dan Smith"}],
                        "companyName": "ACME",
                    }
                ),
                subject="Dan Smith",
                item_class="IPM.Contact",
                extras={"fullName": "Dan Smith", "email": "dan@example.com", "company": "ACME"},
            ),
        ],
    )
    await b.page(
        alice,
        T2,
        [
            _mail_entry("m2", "f-inbox", "m2b", "Budget v2", T1),
            _mail_entry("m4", "f-inbox", "m4", "Late", T2),
        ],
        gone=["m1"],
    )
    await b.page(alice, T3, gone=["f-proj"])
    archive = b.object(ObjectKind.ARCHIVE, "u-alice", T1, name="Alice (archive)", email="alice@contoso.com")
    await b.page(
        archive,
        T1,
        [Entry("af1", folder, None, name="Old"), _mail_entry("am1", "af1", "am1", "Archived", T1)],
    )
    bob = b.object(ObjectKind.MAILBOX, "u-bob", T2, name="Bob", email="bob@contoso.com")
    await b.page(bob, T2, [Entry("bf1", folder, None, name="Inbox", item_class="Mail")])


async def _files(b: Backup) -> None:
    drive = b.object(
        ObjectKind.ONEDRIVE,
        "u-alice",
        T1,
        name="Alice",
        url="https://contoso-my.sharepoint.com/personal/alice",
    )
    doc = EntryKind.DOCUMENT
    await b.page(
        drive,
        T1,
        [
            Entry("d-docs", EntryKind.FOLDER, None, name="Docs"),
            Entry(
                "a-txt",
                doc,
                "d-docs",
                FILES["a1"],
                name="a.txt",
                modified_at=T1,
                extras={"version": "1.0", "createdBy": "Alice"},
            ),
            Entry("b-bin", doc, None, FILES["b"], name="b.bin", modified_at=T1, extras={"version": "1.0"}),
        ],
    )
    await b.page(
        drive,
        T2,
        [
            Entry(
                "a-txt",
                doc,
                "d-docs",
                FILES["a2"],
                name="a.txt",
                modified_at=T2,
                extras={"version": "2.0", "createdBy": "Alice"},
            )
        ],
    )
    await b.page(drive, T3, gone=["b-bin"])


async def _sites(b: Backup) -> None:
    team = b.object(ObjectKind.SITE, "s-1", T1, name="Team", url="https://contoso.sharepoint.com/sites/team")
    b.object(
        ObjectKind.SITE,
        "s-2",
        T1,
        name="Sub",
        url="https://contoso.sharepoint.com/sites/team/sub",
        parent_external_id="s-1",
    )
    lib = {"driveId": "lib1"}
    await b.page(
        team,
        T1,
        [
            Entry("lib1", EntryKind.LIBRARY, None, name="Shared Documents", extras={"description": "Docs"}),
            Entry("list1", EntryKind.LIST, None, name="Tasks"),
            Entry("doc1", EntryKind.DOCUMENT, "lib1", FILES["doc1"], name="spec.docx", extras=lib),
            Entry("fold1", EntryKind.FOLDER, "lib1", name="Reports", item_class="LibraryFolder"),
            Entry("doc2", EntryKind.DOCUMENT, "fold1", FILES["doc2"], name="q1.xlsx", extras=lib),
            Entry(
                "li1",
                EntryKind.ITEM,
                "list1",
                _graph_json({"id": "li1", "eTag": '"li1,1"', "fields": {"Title": "Task 1"}}),
                name="Task 1",
                subject="Task 1",
                extras={"version": "1.0"},
            ),
        ],
    )


def _databases(param: str, tmp: Path) -> Any:
    if param == "sqlite":
        from contextlib import nullcontext

        return nullcontext(f"sqlite:///{tmp / 'config.db'}")
    return temporary_database()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"restore-{request.param}")
    with _databases(request.param, tmp) as db_url:
        client, clock, tokens = start_env(tmp, db_url)
        try:
            org = client.post("/v3/Organizations", json=org_body("contoso.onmicrosoft.com"))
            assert org.status_code == 201, org.text
            control = client.app.state.control  # type: ignore[attr-defined]
            repo_id, path, password = default_repository(client, control)
            asyncio.run(backup_synthetic(db_url, org.json()["id"], repo_id, path, password))
            yield Env(client, clock, org.json()["id"], repo_id, path, password, db_url, tokens)
        finally:
            client.__exit__(None, None, None)
