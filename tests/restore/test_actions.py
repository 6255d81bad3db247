"""Save, export and send actions of the explore trees, parsed back; strict bodies; events; stop
and idle expiry."""

from __future__ import annotations

import io
import mailbox
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, cast

import extract_msg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from tests.restore.conftest import BIG, FILES, MIME, T1, T2, T3, Env
from tests.support.net import free_port

R = "/v3/RestoreSessions/{sid}/Organization"


def read_msg(content: bytes) -> extract_msg.Message:
    """The .msg parsed by extract-msg, an independent reader."""
    return cast(extract_msg.Message, extract_msg.openMsg(content))


def post(env: Env, path: str, body: Any) -> Any:
    return env.client.post(path, json=body, headers={"Accept": "application/octet-stream"})


def test_save_one_item_as_msg_is_a_real_outlook_message(env: Env) -> None:
    sid = env.explore("vex", T1)
    r = post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Items/m3/Action", {"SaveToMsg": None})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert "Plan.msg" in r.headers["content-disposition"]
    parsed = read_msg(r.content)
    try:
        assert parsed.subject == "Plan"
        assert [a.data for a in parsed.attachments] == [BIG]
    finally:
        parsed.close()


def test_save_several_items_as_a_zip_of_msg(env: Env) -> None:
    sid = env.explore("vex", T2)
    body = {"savetoMsg": {"items": [{"id": "m2"}, {"Id": "m4"}]}}
    r = post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Items/Action", body)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        names = sorted(archive.namelist())
        assert names == ["Budget v2.msg", "Late.msg"]
        subjects = []
        for name in names:
            item = read_msg(archive.read(name))
            subjects.append(item.subject)
            item.close()
    assert subjects == ["Budget v2", "Late"]


def test_save_to_eml_is_the_backed_up_mime(env: Env) -> None:
    sid = env.explore("vex")
    r = post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Items/m5/Action", {"saveToEml": None})
    assert r.status_code == 200 and r.content == MIME["m5"]
    # An older version, from an all-versions session, is its own MIME.
    old = env.explore("vex", T2, showAllVersions=True)
    listed = env.get(R.format(sid=old) + "/Mailboxes/u-alice/Items", folderId="f-inbox")
    first_m2 = next(i["id"] for i in listed["results"] if i["id"].startswith("m2~v"))
    r = post(env, R.format(sid=old) + f"/Mailboxes/u-alice/Items/{first_m2}/Action", {"saveToEml": None})
    assert r.content == MIME["m2"]


def test_export_folder_and_mailbox_to_mbox(env: Env) -> None:
    sid = env.explore("vex", T2)
    r = post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Folders/f-inbox/Action", {"exportToMbox": None})
    assert r.status_code == 200
    subjects = _mbox_subjects(r.content)
    assert subjects == ["Budget v2", "Late", "Plan"]  # the folder and its subfolder
    whole = post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Action", {"ExportToMbox": None})
    assert sorted(_mbox_subjects(whole.content)) == ["Budget v2", "Late", "Plan", "Sent one"]
    org = post(env, R.format(sid=sid) + "/Action", {"exportToMbox": None})
    # Mailboxes only: archive items are opaque export streams (no MIME), calendar items and contacts
    # are not mail.
    assert len(_mbox_subjects(org.content)) == 4
    archive = post(env, R.format(sid=sid) + "/Mailboxes/u-alice:archive/Action", {"exportToMbox": None})
    assert archive.status_code == 400 and "restoretoOriginallocation" in archive.json()["message"]


def _mbox_subjects(content: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.mbox"
        path.write_bytes(content)
        box = mailbox.mbox(str(path))
        try:
            return [str(m["subject"]) for m in box]
        finally:
            box.close()


def test_pst_answers_501_naming_the_alternatives(env: Env) -> None:
    sid = env.explore("vex")
    r = post(
        env, R.format(sid=sid) + "/Mailboxes/u-alice/Action", {"exporttoPst": {"enablePstSizeLimit": "false"}}
    )
    assert r.status_code == 501 and "exportToMbox" in r.json()["message"]


def test_document_saves(env: Env) -> None:
    sid = env.explore("veod", T2)
    base = R.format(sid=sid) + "/OneDrives/u-alice"
    one = post(env, base + "/Documents/a-txt/Action", {"save": None})
    assert one.status_code == 200 and one.content == FILES["a2"]
    zipped = post(env, base + "/Documents/a-txt/Action", {"save": {"asZip": "true"}})
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert archive.read("Docs/a.txt") == FILES["a2"]
    whole = post(env, base + "/Action", {"save": None})
    with zipfile.ZipFile(io.BytesIO(whole.content)) as archive:
        assert {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")} == {
            "b.bin": BIG,
            "Docs/a.txt": FILES["a2"],
        }
    folders = post(env, base + "/Folders/Action", {"save": {"folders": [{"id": "d-docs"}]}})
    with zipfile.ZipFile(io.BytesIO(folders.content)) as archive:
        assert archive.read("Docs/a.txt") == FILES["a2"]
    versions = env.explore("veod", T2, showAllVersions=True)
    listed = env.get(R.format(sid=versions) + "/OneDrives/u-alice/Documents", parentId="d-docs")
    old = listed["results"][0]["id"]
    r = post(env, R.format(sid=versions) + f"/OneDrives/u-alice/Documents/{old}/Action", {"save": None})
    assert r.content == FILES["a1"]
    site = env.explore("vesp")
    lib = post(env, R.format(sid=site) + "/Sites/s-1/Libraries/lib1/Action", {"save": None})
    with zipfile.ZipFile(io.BytesIO(lib.content)) as archive:
        assert archive.read("Shared Documents/Reports/q1.xlsx") == FILES["doc2"]
        assert archive.read("Shared Documents/spec.docx") == FILES["doc1"]


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/Mailboxes/u-alice/Items/m5/Action", {"savetoMsg": None, "saveToEml": None}, "exactly one"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"restoreEverything": None}, "Unknown action"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"savetoMsg": {"colour": "red"}}, "Unknown property"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"savetoMsg": {"items": [{"id": "m5"}]}}, "Unknown property"),
        ("/Mailboxes/u-alice/Items/Action", {"savetoMsg": None}, "items"),
        ("/Mailboxes/u-alice/Items/Action", {"savetoMsg": {"items": []}}, "non-empty"),
        ("/Mailboxes/u-alice/Items/Action", {"savetoMsg": {"items": [{}]}}, "id"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"restoreTo": {"changedItems": "maybe"}}, "true or false"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"restoreTo": {"folder": "x"}}, "mailbox"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"sendtoDifferentAddress": {"subject": "x"}}, "'to'"),
        ("/Mailboxes/u-alice/Items/m5/Action", ["savetoMsg"], "exactly one"),
        ("/Mailboxes/u-alice/Items/m5/Action", {"savetoMsg": 3}, "null or an object"),
    ],
)
def test_bad_action_bodies_are_400(env: Env, path: str, body: Any, needle: str) -> None:
    sid = env.explore("vex")
    before = len(env.get(f"/v3/RestoreSessions/{sid}/Events")["results"])
    r = env.client.post(R.format(sid=sid) + path, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["message"]
    assert len(env.get(f"/v3/RestoreSessions/{sid}/Events")["results"]) == before


# ---------------------------------------------------------------------------------------------- send
@dataclass
class Inbox:
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def _configure_smtp(env: Env, resource: str, port: int) -> None:
    body = {
        "enableNotification": "true",
        "server": "127.0.0.1",
        "port": str(port),
        "from": "vault@contoso.com",
        "useSSL": "false",
        "useAuthentication": "false",
    }
    assert env.client.put(f"/v3/{resource}", json=body).status_code == 200


def test_send_items_and_documents(env: Env, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    sid = env.explore("vex")
    for resource in ("VEXEmailSettings", "VEODEmailSettings"):
        env.client.put(f"/v3/{resource}", json={"server": ""})
    r = env.client.post(
        R.format(sid=sid) + "/Mailboxes/u-alice/Items/m5/Action", json={"sendtoDefaultAddress": None}
    )
    assert r.status_code == 400 and "VEXEmailSettings" in r.json()["message"]
    _configure_smtp(env, "VEXEmailSettings", port)
    _configure_smtp(env, "VEODEmailSettings", port)
    r = env.client.post(
        R.format(sid=sid) + "/Mailboxes/u-alice/Items/m5/Action", json={"sendtoDefaultAddress": None}
    )
    assert r.status_code == 200, r.text
    body = {
        "sendtoDifferentAddress": {
            "to": "helpdesk@example.com",
            "from": "ops@contoso.com",
            "subject": "Yours",
            "text": "Here.",
            "items": [{"id": "m2"}, {"id": "m4"}],
        }
    }
    r = env.client.post(R.format(sid=sid) + "/Mailboxes/u-alice/Items/Action", json=body)
    assert r.status_code == 200, r.text
    assert [e.rcpt_tos for e in inbox.envelopes] == [["alice@contoso.com"], ["helpdesk@example.com"]]
    second = message_from_bytes(inbox.envelopes[1].original_content or b"", policy=policy.default)
    assert second["subject"] == "Yours" and inbox.envelopes[1].mail_from == "ops@contoso.com"
    attached = [part.get_payload(0).as_bytes() for part in second.iter_attachments()]  # type: ignore[union-attr]
    assert [message_from_bytes(a)["subject"] for a in attached] == ["Budget v2", "Late"]
    first = message_from_bytes(inbox.envelopes[0].original_content or b"", policy=policy.default)
    inner = next(first.iter_attachments()).get_payload(0)
    assert inner.get_content().strip() == "Outgoing."  # type: ignore[union-attr]
    drive = env.explore("veod", T2)
    send = {"send": {"to": "alice@contoso.com", "documents": [{"id": "a-txt"}, {"id": "b-bin"}]}}
    r = env.client.post(R.format(sid=drive) + "/OneDrives/u-alice/Documents/Action", json=send)
    assert r.status_code == 200, r.text
    mail = message_from_bytes(inbox.envelopes[2].original_content or b"", policy=policy.default)
    files = {p.get_filename(): p.get_payload(decode=True) for p in mail.iter_attachments()}
    assert files == {"a.txt": FILES["a2"], "b.bin": BIG}
    events = env.get(f"/v3/RestoreSessions/{sid}/Events")["results"]
    sends = [e for e in events if e["type"] == "Send"]
    assert [e["status"] for e in sends] == ["Success", "Success"]  # the refused one changed nothing


# ---------------------------------------------------------------------------------------------- lifecycle
def test_events_record_each_operation(env: Env) -> None:
    sid = env.explore("vex", T3)
    env.get(R.format(sid=sid) + "/Mailboxes/u-alice/Items")
    post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Items/m5/Action", {"saveToEml": None})
    post(env, R.format(sid=sid) + "/Mailboxes/u-alice/Action", {"exportToMbox": None})
    page = env.get(f"/v3/RestoreSessions/{sid}/Events")
    rows = page["results"]
    assert [(e["type"], e["status"]) for e in rows] == [
        ("None", "Success"),
        ("View", "Success"),
        ("Save", "Success"),
        ("Export", "Success"),
    ]
    assert [e["order"] for e in rows] == [0, 1, 2, 3]
    assert all(len(e["duration"]) == 8 and e["duration"].count(":") == 2 for e in rows)
    assert page["offset"] == 0 and page["limit"] == 30
    one = env.get(f"/v3/RestoreSessions/{sid}/Events/{rows[2]['id']}")
    assert one["title"].startswith("saveToEml") and one["_links"]["restoreSession"]["href"].endswith(sid)


def test_stop_closes_the_tree(env: Env) -> None:
    sid = env.explore("vex")
    assert env.client.post(f"/v3/RestoreSessions/{sid}/Action", json={"stop": None}).status_code == 200
    session = env.get(f"/v3/RestoreSessions/{sid}")
    assert session["state"] == "Stopped" and "endTime" in session
    r = env.client.get(R.format(sid=sid) + "/Mailboxes")
    assert r.status_code == 400 and "Stopped" in r.json()["message"]
    r = env.client.post(R.format(sid=sid) + "/Mailboxes/u-alice/Items/m5/Action", json={"saveToEml": None})
    assert r.status_code == 400
    assert env.client.post(f"/v3/RestoreSessions/{sid}/Action", json={"stop": None}).status_code == 200
    assert env.get(f"/v3/RestoreSessions/{sid}/Events")["results"][-1]["title"] == "Restore session stopped"


def test_idle_sessions_stop_by_themselves(env: Env) -> None:
    explorer = env.client.app.state.restore  # type: ignore[attr-defined]
    busy = env.explore("vex")
    idle = env.explore("vex")
    env.clock.advance(timedelta(minutes=20))
    env.get(R.format(sid=busy) + "/Mailboxes")  # activity keeps it alive
    env.clock.advance(timedelta(minutes=15))
    stopped = explorer.expire_idle()
    assert [str(s) for s in stopped if str(s) in (busy, idle)] == [idle]
    assert env.get(f"/v3/RestoreSessions/{idle}")["state"] == "Stopped"
    assert env.get(f"/v3/RestoreSessions/{busy}")["state"] == "Working"
    last = env.get(f"/v3/RestoreSessions/{idle}/Events")["results"][-1]
    assert "30 minutes without activity" in last["message"]
    assert env.client.get(R.format(sid=idle) + "/Mailboxes").status_code == 400
    env.clock.advance(timedelta(minutes=31))
    explorer.expire_idle()
    env.relogin()
    assert env.get(f"/v3/RestoreSessions/{busy}")["state"] == "Stopped"


def test_stop_waits_for_operations_in_flight(env: Env) -> None:
    """Working -> Stopping while an operation runs -> Stopped once it ends."""
    import threading
    import uuid as uuid_

    from sqlalchemy import select

    from m365vault.control.accounts import Principal
    from m365vault.db.config_tables import User

    control = env.client.app.state.control  # type: ignore[attr-defined]
    explorer = env.client.app.state.restore  # type: ignore[attr-defined]
    sid = env.explore("vex")
    with control.services.unit_of_work() as db:
        user = db.scalars(select(User).where(User.name == "admin")).one()
        principal = Principal(user.id, user.name)
    session_id = uuid_.UUID(sid)
    explorer._begin(session_id)  # an operation (say a long restore) is running
    stopper = threading.Thread(target=control.restore_sessions.stop, args=(principal, session_id))
    stopper.start()
    deadline = time.monotonic() + 10
    while env.get(f"/v3/RestoreSessions/{sid}")["state"] != "Stopping" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.get(f"/v3/RestoreSessions/{sid}")["state"] == "Stopping"
    assert env.client.get(R.format(sid=sid) + "/Mailboxes").status_code == 400  # no new work meanwhile
    assert stopper.is_alive()
    explorer._end(session_id)
    stopper.join(10)
    assert not stopper.is_alive()
    session = env.get(f"/v3/RestoreSessions/{sid}")
    assert session["state"] == "Stopped" and "endTime" in session
