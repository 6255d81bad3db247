"""Backup and restore joined through the real parts only: the emulator and the server as processes,
the v3 API over HTTPS, Graph for the tenant. Back up one user, delete and change mail and files in
the tenant, back up again, explore both points in time with and without the flags, restore in place
and elsewhere, then check the tenant through Graph; save one item as .msg and mail one to a real
SMTP server. Nothing here writes the catalog directly: what the engine wrote is what restore reads."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, cast

import extract_msg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from tests.support.net import free_port
from tests.support.product import (
    Emulator,
    Server,
    default_repository_id,
    organization_body,
    start_emulator,
    start_server,
    wait_new_session,
    wait_session_end,
)

R = "/v3/RestoreSessions/{sid}/Organization"


@dataclass
class World:
    emulator: Emulator
    server: Server
    api: httpx.Client
    graph: httpx.Client
    job_id: str
    uid: str
    drive_id: str
    sessions: list[dict[str, Any]] = field(default_factory=list)

    def backup(self) -> dict[str, Any]:
        previous = self.sessions[-1]["id"] if self.sessions else None
        r = self.api.post(f"/v3/Jobs/{self.job_id}/Action", json={"start": None})
        assert r.status_code == 200, r.text
        wait_new_session(self.api, self.job_id, previous)
        session = wait_session_end(self.api, self.job_id, timeout=120)
        assert session["status"] == "Success", session
        self.sessions.append(session)
        return session

    def explore(self, at: datetime, kind: str, **flags: bool) -> str:
        body: dict[str, Any] = {"type": kind, "datetime": at.isoformat(), **flags}
        r = self.api.post(f"/v3/Jobs/{self.job_id}/Action", json={"explore": body})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def get(self, path: str, **params: Any) -> Any:
        r = self.api.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def post(self, path: str, body: Any) -> httpx.Response:
        r = self.api.post(path, json=body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pick_user(graph: httpx.Client) -> tuple[str, str]:
    """A user with a mailbox holding a few inbox messages and a OneDrive with files at its root."""
    for user in graph.get("/users", params={"$top": "999"}).json()["value"]:
        uid = user["id"]
        drive = graph.get(f"/users/{uid}/drive")
        if drive.status_code != 200 or graph.get(f"/users/{uid}/mailboxSettings").status_code != 200:
            continue
        files = [c for c in _children(graph, drive.json()["id"]) if "file" in c]
        if len(files) >= 2 and len(_inbox(graph, uid)) >= 3:
            return uid, str(drive.json()["id"])
    raise AssertionError("no user with mail and files in the emulated tenant")


def _inbox(graph: httpx.Client, uid: str) -> list[dict[str, Any]]:
    r = graph.get(
        f"/users/{uid}/mailFolders/inbox/messages",
        params={"$top": "200", "$select": "id,subject,body,parentFolderId"},
    )
    r.raise_for_status()
    return list(r.json()["value"])


def _children(graph: httpx.Client, drive_id: str, item: str = "root") -> list[dict[str, Any]]:
    r = graph.get(f"/drives/{drive_id}/items/{item}/children")
    r.raise_for_status()
    return list(r.json()["value"])


def _download(graph: httpx.Client, drive_id: str, item_id: str) -> bytes:
    r = graph.get(f"/drives/{drive_id}/items/{item_id}/content", follow_redirects=True)
    r.raise_for_status()
    return r.content


def _mime(graph: httpx.Client, uid: str, message_id: str) -> bytes:
    r = graph.get(f"/users/{uid}/messages/{message_id}/$value")
    r.raise_for_status()
    return r.content


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir: Path = tmp_path_factory.mktemp("e2e-restore")
    emulator = start_emulator(workdir)
    try:
        server = start_server(workdir, emulator)
        try:
            with server.api() as api, emulator.graph() as graph:
                r = api.post("/v3/Organizations", json=organization_body(emulator))
                assert r.status_code == 201, r.text
                org = r.json()
                uid, drive_id = _pick_user(graph)
                user = graph.get(f"/users/{uid}").json()
                body = {
                    "name": "One user",
                    "backupType": "SelectedItems",
                    "repositoryId": default_repository_id(api),
                    "selectedItems": [
                        {
                            "type": "user",
                            "user": {
                                "id": uid,
                                "displayName": user.get("displayName", ""),
                                "name": user.get("userPrincipalName", ""),
                                "type": "User",
                            },
                            "mailbox": "true",
                            "oneDrive": "true",
                        }
                    ],
                    "schedulePolicy": {"type": "Daily", "dailyType": "Everyday", "dailyTime": "03:00:00"},
                }
                r = api.post(f"/v3/Organizations/{org['id']}/Jobs", json=body)
                assert r.status_code == 201, r.text
                yield World(emulator, server, api, graph, r.json()["id"], uid, drive_id)
        finally:
            code = server.stop()
            assert code in (0, -9), f"server exited with {code}:\n{server.process.log()[-3000:]}"
    finally:
        emulator.stop()


@dataclass
class Inbox:
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


def test_backup_change_explore_restore_and_verify_through_graph(world: World) -> None:
    uid, drive_id, graph = world.uid, world.drive_id, world.graph
    messages = _inbox(graph, uid)[:3]
    gone, changed, kept = messages
    mimes = {m["id"]: _mime(graph, uid, m["id"]) for m in messages}
    root_before = _children(graph, drive_id)
    files = sorted((c for c in root_before if "file" in c), key=lambda c: c["size"])[:2]
    removed, edited = files
    originals = {f["id"]: _download(graph, drive_id, f["id"]) for f in files}

    first = world.backup()
    between = _when(first["endTime"]) + timedelta(milliseconds=1)
    time.sleep(0.05)

    # Tenant activity: one message deleted, one renamed, one file deleted, one rewritten.
    assert graph.delete(f"/users/{uid}/messages/{gone['id']}").status_code == 204
    r = graph.patch(f"/users/{uid}/messages/{changed['id']}", json={"subject": "tampered subject"})
    assert r.status_code == 200, r.text
    assert graph.delete(f"/drives/{drive_id}/items/{removed['id']}").status_code == 204
    new_content = b"second version, written after the first backup\n" * 10
    r = graph.put(f"/drives/{drive_id}/items/{edited['id']}/content", content=new_content)
    assert r.status_code in (200, 201), r.text

    second = world.backup()
    after = _when(second["endTime"]) + timedelta(milliseconds=1)

    # -- Explore: mail at both points, with and without showDeleted.
    item = R + f"/Mailboxes/{uid}/Items/{{item}}"
    then = world.explore(between, "vex")
    now = world.explore(after, "vex")
    now_deleted = world.explore(after, "vex", showDeleted=True)
    assert world.get(item.format(sid=then, item=gone["id"]))["subject"] == gone["subject"]
    assert world.get(item.format(sid=then, item=changed["id"]))["subject"] == changed["subject"]
    assert world.api.get(item.format(sid=now, item=gone["id"])).status_code == 404
    assert world.get(item.format(sid=now, item=changed["id"]))["subject"] == "tampered subject"
    shown = world.get(item.format(sid=now_deleted, item=gone["id"]))
    assert shown["subject"] == gone["subject"] and shown.get("isDeleted") is True

    # -- Explore: files at both points, with and without showDeleted / showAllVersions.
    def documents(sid: str) -> dict[str, dict[str, Any]]:
        page = world.get(R.format(sid=sid) + f"/OneDrives/{uid}/Documents", limit=10000)
        return {d["id"]: d for d in page["results"]}

    files_then = documents(world.explore(between, "veod"))
    assert {removed["id"], edited["id"]} <= set(files_then)
    files_now = documents(world.explore(after, "veod"))
    assert removed["id"] not in files_now and edited["id"] in files_now
    # Browsing from the top shows what lies directly in the drive (as Graph listed it before).
    top = world.explore(between, "veod")
    top_folders = world.get(R.format(sid=top) + f"/OneDrives/{uid}/Folders", parentId="null")["results"]
    top_documents = world.get(R.format(sid=top) + f"/OneDrives/{uid}/Documents", parentId="null")["results"]
    assert {d["name"] for d in top_folders} == {c["name"] for c in root_before if "folder" in c}
    assert {d["name"] for d in top_documents} == {c["name"] for c in root_before if "file" in c}
    assert all(d["_links"].get("parent") is None for d in top_folders + top_documents)
    inside = world.get(R.format(sid=top) + f"/OneDrives/{uid}/Documents", parentId=top_folders[0]["id"])
    assert inside["results"], top_folders[0]
    parent_link = inside["results"][0]["_links"]["parent"]["href"]
    assert world.get(parent_link)["name"] == top_folders[0]["name"]
    files_deleted = documents(world.explore(after, "veod", showDeleted=True))
    assert files_deleted[removed["id"]].get("isDeleted") is True
    versions_sid = world.explore(after, "veod", showAllVersions=True)
    versions = [d for d in documents(versions_sid) if d.split("~v")[0] == edited["id"]]
    assert len(versions) == 2, versions
    older = next(v for v in versions if v != edited["id"])

    # -- Restore in place: the deleted message and the deleted file, from the first point in time.
    r = world.post(item.format(sid=then, item=gone["id"]) + "/Action", {"restoretoOriginallocation": None})
    assert r.json()["createdItemsCount"] == 1 and r.json()["failedItemsCount"] == 0, r.json()
    veod_then = world.explore(between, "veod")
    doc = R.format(sid=veod_then) + f"/OneDrives/{uid}/Documents/{removed['id']}/Action"
    r = world.post(doc, {"restoretoOriginallocation": None})
    assert r.json()["createdItemsCount"] == 1 and r.json()["failedItemsCount"] == 0, r.json()
    # The earlier version of the edited file, copied into another folder of the same OneDrive.
    copy = {"copyTo": {"onedrive": {"id": uid}, "folder": "Recovered", "documents": [{"id": older}]}}
    r = world.post(R.format(sid=versions_sid) + f"/OneDrives/{uid}/Documents/Action", copy)
    assert r.json()["createdItemsCount"] == 1 and r.json()["failedItemsCount"] == 0, r.json()

    # The changed message as it was, into another folder of the mailbox (source path recreated).
    elsewhere = {"restoreTo": {"mailbox": uid, "folder": "Recovered", "items": [{"id": changed["id"]}]}}
    r = world.post(R.format(sid=then) + f"/Mailboxes/{uid}/Items/Action", elsewhere)
    assert r.json()["createdItemsCount"] == 1 and r.json()["failedItemsCount"] == 0, r.json()

    # A whole OneDrive saved as a ZIP: paths as they are inside the drive, bytes as backed up.
    whole = world.post(R.format(sid=veod_then) + f"/OneDrives/{uid}/Action", {"save": None})
    with zipfile.ZipFile(io.BytesIO(whole.content)) as archive:
        names = set(archive.namelist())
        assert {f["name"] for f in files} <= names
        assert all(archive.read(f["name"]) == originals[f["id"]] for f in files)
    assert {n.split("/")[0] for n in names} <= {c["name"] for c in root_before}  # no drive-named folder
    assert any("/" in n for n in names)  # the folders' documents are there too

    # -- The tenant through Graph.
    back = [m for m in _inbox(graph, uid) if m["subject"] == gone["subject"]]
    assert len(back) == 1
    assert _mime(graph, uid, back[0]["id"]) == mimes[gone["id"]]  # the backed-up MIME byte for byte
    top_mail = graph.get(f"/users/{uid}/mailFolders", params={"$top": "100"}).json()["value"]
    recovered_mail = next(f for f in top_mail if f["displayName"] == "Recovered")
    inner = graph.get(f"/users/{uid}/mailFolders/{recovered_mail['id']}/childFolders").json()["value"]
    assert [f["displayName"] for f in inner] == ["Inbox"]
    copies = graph.get(f"/users/{uid}/mailFolders/{inner[0]['id']}/messages").json()["value"]
    assert [_mime(graph, uid, m["id"]) for m in copies] == [mimes[changed["id"]]]
    root = {c["name"]: c for c in _children(graph, drive_id)}
    assert _sha(_download(graph, drive_id, root[removed["name"]]["id"])) == _sha(originals[removed["id"]])
    assert _sha(_download(graph, drive_id, edited["id"])) == _sha(new_content)  # left as it is now
    recovered = {c["name"]: c for c in _children(graph, drive_id, root["Recovered"]["id"])}
    assert _sha(_download(graph, drive_id, recovered[edited["name"]]["id"])) == _sha(originals[edited["id"]])

    # -- Save one item as .msg (parsed by extract-msg, an independent reader).
    r = world.post(item.format(sid=then, item=kept["id"]) + "/Action", {"savetoMsg": None})
    msg = cast(extract_msg.Message, extract_msg.openMsg(r.content))
    try:
        assert msg.subject == kept["subject"]
    finally:
        msg.close()

    # -- Send one item to another address through a real SMTP server.
    smtp_inbox = Inbox()
    port = free_port()
    controller = Controller(smtp_inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = {
            "enableNotification": "true",
            "server": "127.0.0.1",
            "port": str(port),
            "from": "vault@contoso.com",
            "useSSL": "false",
            "useAuthentication": "false",
        }
        assert world.api.put("/v3/VEXEmailSettings", json=settings).status_code == 200
        send = {"sendtoDifferentAddress": {"to": "helpdesk@example.com", "subject": "Recovered"}}
        world.post(item.format(sid=then, item=changed["id"]) + "/Action", send)
    finally:
        controller.stop()
    assert [e.rcpt_tos for e in smtp_inbox.envelopes] == [["helpdesk@example.com"]]
    mail = message_from_bytes(smtp_inbox.envelopes[0].original_content or b"", policy=policy.default)
    assert mail["subject"] == "Recovered"
    attached = [part.get_payload(0).as_bytes() for part in mail.iter_attachments()]  # type: ignore[union-attr]
    assert [message_from_bytes(a)["subject"] for a in attached] == [changed["subject"]]
