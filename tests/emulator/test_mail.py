"""Mail folders, messages, delta rounds, MIME and the writes restore needs (graph-protocol.md §2.6, §3.2,
§3.3, §4.1, §4.2, §5.1, §5.2)."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

import httpx

from tests.emulator.conftest import Emu, drain

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def _uid(emu: Emu, index: int = 0) -> str:
    with emu.client() as c:
        users = c.get("/users", params={"$select": "id,mail,userType"}).json()["value"]
    return [u for u in users if u["mail"] and u["userType"] == "Member"][index]["id"]


def test_top_level_folders_and_nested_child_folders(graph: httpx.Client, mailbox_user: dict) -> None:
    uid = mailbox_user["id"]
    top = graph.get(f"/users/{uid}/mailFolders", params={"$top": "50"}).json()["value"]
    names = {f["displayName"] for f in top}
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Archive", "Junk Email", "Outbox"} <= names
    assert "Conversation History" not in names  # hidden unless asked
    hidden = graph.get(
        f"/users/{uid}/mailFolders", params={"includeHiddenFolders": "true", "$top": "50"}
    ).json()
    assert any(f["isHidden"] for f in hidden["value"])
    inbox = graph.get(f"/users/{uid}/mailFolders/inbox").json()
    assert {
        "id",
        "displayName",
        "parentFolderId",
        "childFolderCount",
        "unreadItemCount",
        "totalItemCount",
        "isHidden",
    } <= set(inbox)
    assert inbox["childFolderCount"] == 1
    projects = graph.get(f"/users/{uid}/mailFolders/inbox/childFolders").json()["value"]
    assert [f["displayName"] for f in projects] == ["Projects"]
    deeper = graph.get(f"/users/{uid}/mailFolders/{projects[0]['id']}/childFolders").json()["value"]
    assert deeper[0]["parentFolderId"] == projects[0]["id"]
    # Default page of 10 with a $skip nextLink that carries the original options.
    page = graph.get(f"/users/{uid}/mailFolders", params={"includeHiddenFolders": "true", "$top": "3"}).json()
    assert len(page["value"]) == 3 and "$skip=3" in page["@odata.nextLink"]
    assert page["@odata.nextLink"].startswith("http://127.0.0.1")


def test_folder_delta_returns_whole_hierarchy_then_changes(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 1)
    items, delta_link, _ = drain(
        graph, f"/users/{uid}/mailFolders/delta", params={"$select": "displayName,parentFolderId"}
    )
    names = {f["displayName"] for f in items}
    assert {"Inbox", "Projects", "Contoso Rollout", "Phase 2", "Receipts"} <= names
    assert all(set(f) <= {"@odata.type", "id", "displayName", "parentFolderId"} for f in items)
    created = graph.post(f"/users/{uid}/mailFolders/inbox/childFolders", json={"displayName": "Restored"})
    assert created.status_code == 201
    dup = graph.post(f"/users/{uid}/mailFolders/inbox/childFolders", json={"displayName": "restored"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "ErrorFolderExists"
    changes, delta2, _ = drain(graph, delta_link)
    assert [c["id"] for c in changes] == [created.json()["id"]]
    assert graph.delete(f"/users/{uid}/mailFolders/{created.json()['id']}").status_code == 204
    changes, _, _ = drain(graph, delta2)
    assert changes == [
        {
            "@odata.type": "#microsoft.graph.mailFolder",
            "id": created.json()["id"],
            "@removed": {"reason": "deleted"},
        }
    ]


def test_message_delta_pages_and_changes_exactly_once(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 2)
    inbox = graph.get(f"/users/{uid}/mailFolders/inbox").json()
    headers = {"Prefer": 'odata.maxpagesize=7, IdType="ImmutableId"'}
    url = f"/users/{uid}/mailFolders/inbox/messages/delta"
    r = graph.get(url, headers=headers, params={"$select": "subject,isRead,receivedDateTime"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=7"
    assert len(r.json()["value"]) == 7 and "$skiptoken=" in r.json()["@odata.nextLink"]
    assert r.json()["@odata.nextLink"].startswith(f"{emu.graph}/users/{uid}/mailFolders('")
    first = r.json()["value"][0]
    assert first["@odata.type"] == "#microsoft.graph.message" and first["@odata.etag"].startswith('W/"')
    assert set(first) == {"@odata.type", "@odata.etag", "id", "subject", "isRead", "receivedDateTime"}
    items, delta_link, pages = drain(graph, url, headers, {"$select": "subject,isRead,receivedDateTime"})
    assert len(items) == inbox["totalItemCount"] and len({m["id"] for m in items}) == len(items)
    assert pages == -(-len(items) // 7)
    assert "$deltatoken=" in delta_link
    # Nothing changed: an empty round and a deltaLink again.
    empty, delta_link, _ = drain(graph, delta_link, headers)
    assert empty == []
    victim, read_me = items[0]["id"], items[1]["id"]
    assert (
        graph.patch(
            f"/users/{uid}/messages/{read_me}", json={"isRead": True, "categories": ["Red"]}
        ).status_code
        == 200
    )
    assert graph.delete(f"/users/{uid}/messages/{victim}").status_code == 204
    assert graph.get(f"/users/{uid}/messages/{victim}").status_code == 404
    new = graph.post(f"/users/{uid}/mailFolders/inbox/messages", json={"subject": "Restored hello"})
    assert new.status_code == 201
    changes, delta_link, _ = drain(graph, delta_link, headers)
    by_id = {c["id"]: c for c in changes}
    assert len(changes) == 3
    assert by_id[victim] == {
        "@odata.type": "#microsoft.graph.message",
        "id": victim,
        "@removed": {"reason": "deleted"},
    }
    assert by_id[read_me]["isRead"] is True and set(by_id[read_me]) >= {"subject", "isRead"}
    assert by_id[new.json()["id"]]["subject"] == "Restored hello"
    again, _, _ = drain(graph, delta_link, headers)
    assert again == []


def test_move_reports_removal_in_source_and_arrival_in_destination(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 3)
    src = f"/users/{uid}/mailFolders/inbox/messages/delta"
    dst = f"/users/{uid}/mailFolders/archive/messages/delta"
    src_items, src_link, _ = drain(graph, src, IMMUTABLE)
    _, dst_link, _ = drain(graph, dst, IMMUTABLE)
    mid = src_items[0]["id"]
    moved = graph.post(
        f"/users/{uid}/messages/{mid}/move", json={"destinationId": "archive"}, headers=IMMUTABLE
    )
    assert moved.status_code == 201 and moved.json()["id"] == mid  # immutable ids survive moves
    archive_id = graph.get(f"/users/{uid}/mailFolders/archive").json()["id"]
    assert moved.json()["parentFolderId"] == archive_id
    src_changes, _, _ = drain(graph, src_link, IMMUTABLE)
    dst_changes, _, _ = drain(graph, dst_link, IMMUTABLE)
    assert src_changes == [
        {"@odata.type": "#microsoft.graph.message", "id": mid, "@removed": {"reason": "deleted"}}
    ]
    assert [m["id"] for m in dst_changes] == [mid]
    # Without ImmutableId a move mints a new id and the old one is gone.
    other = src_items[1]["id"]
    moved2 = graph.post(f"/users/{uid}/messages/{other}/move", json={"destinationId": "archive"})
    assert moved2.json()["id"] != other
    assert graph.get(f"/users/{uid}/messages/{other}").status_code == 404
    assert graph.get(f"/users/{uid}/messages/{moved2.json()['id']}").status_code == 200


def test_mime_value_is_rfc822_with_attachments(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 0)
    items, _, _ = drain(
        graph,
        f"/users/{uid}/mailFolders/inbox/messages/delta",
        {"Prefer": "odata.maxpagesize=100"},
        {"$select": "hasAttachments,subject,internetMessageId"},
    )
    with_att = [m for m in items if m["hasAttachments"]]
    assert with_att, "the generator puts attachments on a share of messages"
    m = with_att[0]
    r = graph.get(f"/users/{uid}/messages/{m['id']}/$value")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    parsed = email.message_from_bytes(r.content, policy=email.policy.default)
    assert parsed["Subject"] == m["subject"] and parsed["Message-ID"] == m["internetMessageId"]
    assert parsed["Received"]
    files = list(parsed.iter_attachments())
    atts = graph.get(f"/users/{uid}/messages/{m['id']}/attachments").json()["value"]
    assert len(files) == len(atts) >= 1
    assert atts[0]["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert base64.b64decode(atts[0]["contentBytes"]) == files[0].get_payload(decode=True)
    raw = graph.get(f"/users/{uid}/messages/{m['id']}/attachments/{atts[0]['id']}/$value")
    assert raw.content == files[0].get_payload(decode=True) and len(raw.content) == atts[0]["size"]
    # Same through the folder-qualified path and the OData key syntax.
    folder = graph.get(f"/users/{uid}/mailFolders/inbox").json()["id"]
    assert graph.get(f"/users/{uid}/mailFolders('{folder}')/messages/{m['id']}/$value").content == r.content


def test_shared_attachments_are_identical_across_mailboxes(graph: httpx.Client, emu: Emu) -> None:
    seen: dict[str, set[bytes]] = {}
    for index in range(3):
        uid = _uid(emu, index)
        items, _, _ = drain(
            graph,
            f"/users/{uid}/mailFolders/inbox/messages/delta",
            {"Prefer": "odata.maxpagesize=200"},
            {"$select": "hasAttachments"},
        )
        for m in items:
            if m.get("hasAttachments"):
                for a in graph.get(f"/users/{uid}/messages/{m['id']}/attachments").json()["value"]:
                    seen.setdefault(a["name"], set()).add(base64.b64decode(a["contentBytes"]))
    shared = [name for name, blobs in seen.items() if len(blobs) == 1 and not name[0].islower()]
    assert shared, f"expected the same named attachment in several messages: {sorted(seen)}"


def test_create_from_mime_and_json(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 1)
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.com>"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "Restored from MIME"
    msg["Message-ID"] = "<restore-1@example.com>"
    msg.set_content("hello body")
    msg.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="a.pdf")
    raw = msg.as_bytes()
    r = graph.post(
        f"/users/{uid}/mailFolders/inbox/messages",
        content=base64.b64encode(raw),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert (
        created["isDraft"] is True
        and created["subject"] == "Restored from MIME"
        and created["hasAttachments"]
    )
    assert created["from"] == {"emailAddress": {"name": "Ann", "address": "ann@example.com"}}
    assert graph.get(f"/users/{uid}/messages/{created['id']}/$value").content == raw
    bad = graph.post(
        f"/users/{uid}/mailFolders/inbox/messages",
        content=b"***not base64***",
        headers={"Content-Type": "text/plain"},
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "error": {
            "code": "ErrorMimeContentInvalidBase64String",
            "message": "Invalid base64 string for MIME content.",
        }
    }
    too_big = graph.post(
        f"/users/{uid}/mailFolders/inbox/messages",
        content=b"A" * (4 * 1024 * 1024 + 4),
        headers={"Content-Type": "text/plain"},
    )
    assert too_big.status_code == 413
    body = {
        "subject": "Non-draft restore",
        "body": {"contentType": "html", "content": "<p>x</p>"},
        "from": {"emailAddress": {"name": "C", "address": "c@example.com"}},
        "isRead": True,
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "4"},
            {"id": "SystemTime 0x0039", "value": "2023-05-01T10:00:00Z"},
            {"id": "SystemTime 0x0E06", "value": "2023-05-01T10:00:05Z"},
        ],
    }
    j = graph.post(f"/users/{uid}/mailFolders/archive/messages", json=body).json()
    assert j["isDraft"] is False and j["sentDateTime"] == "2023-05-01T10:00:00Z"
    assert j["receivedDateTime"] == "2023-05-01T10:00:05Z" and j["isRead"] is True
    mime = email.message_from_bytes(
        graph.get(f"/users/{uid}/messages/{j['id']}/$value").content, policy=email.policy.default
    )
    assert mime["Subject"] == "Non-draft restore"
    draft = graph.post(f"/users/{uid}/messages", json={"subject": "draft"}).json()
    assert draft["parentFolderId"] == graph.get(f"/users/{uid}/mailFolders/drafts").json()["id"]
    att = graph.post(
        f"/users/{uid}/messages/{j['id']}/attachments",
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "n.txt",
            "contentType": "text/plain",
            "contentBytes": base64.b64encode(b"note").decode(),
        },
    )
    assert att.status_code == 201
    listed = graph.get(f"/users/{uid}/messages/{j['id']}/attachments").json()["value"]
    assert [a["name"] for a in listed] == ["n.txt"]


def test_attachment_upload_session(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 0)
    mid = graph.post(f"/users/{uid}/mailFolders/drafts/messages", json={"subject": "big"}).json()["id"]
    data = bytes(range(256)) * 20_000  # 5,120,000 bytes
    s = graph.post(
        f"/users/{uid}/messages/{mid}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": len(data)}},
    )
    assert s.status_code == 201 and s.json()["nextExpectedRanges"] == ["0-"]
    url = s.json()["uploadUrl"]
    chunk = 2 * 1024 * 1024
    with httpx.Client() as raw:
        for start in range(0, len(data), chunk):
            part = data[start : start + chunk]
            r = raw.put(
                url,
                content=part,
                headers={"Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(data)}"},
            )
            if start + chunk < len(data):
                assert r.status_code == 200 and r.json()["nextExpectedRanges"] == [f"{start + len(part)}-"]
        assert r.status_code == 201 and "/attachments/" in r.headers["Location"]
    atts = graph.get(f"/users/{uid}/messages/{mid}/attachments").json()["value"]
    assert atts[0]["size"] == len(data) and base64.b64decode(atts[0]["contentBytes"]) == data


def test_errors_and_token_rules(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 0)
    r = graph.get(f"/users/{uid}/messages/AAMkbogus")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ErrorItemNotFound"
    assert "request-id" in r.json()["error"]["innerError"] and r.headers["request-id"]
    r = graph.get(f"/users/{uid}/mailFolders/inbox", headers={"client-request-id": "abc-123"})
    assert r.headers["client-request-id"] == "abc-123"
    r = graph.get(f"/users/{uid}/mailFolders/inbox/messages/delta", params={"$deltatoken": "latest"})
    assert r.status_code == 400
    _, link, _ = drain(graph, f"/users/{uid}/mailFolders/junkemail/messages/delta")
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    r = graph.get(tampered)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    users = graph.get("/users", params={"$select": "id,mail,userType"}).json()["value"]
    no_mailbox = next(u for u in users if not u["mail"])
    r = graph.get(f"/users/{no_mailbox['id']}/mailFolders")
    assert r.status_code == 404 and r.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"


def test_delta_generations_expire_with_sync_state_not_found(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 4)
    url = f"/users/{uid}/mailFolders/sentitems/messages/delta"
    _, oldest, _ = drain(graph, url)
    link = oldest
    for i in range(6):  # each round with a change mints a new generation; 5 are kept
        graph.post(f"/users/{uid}/mailFolders/sentitems/messages", json={"subject": f"gen {i}"})
        _, link, _ = drain(graph, link)
    r = graph.get(oldest)
    assert r.status_code == 410 and r.json()["error"]["code"] == "SyncStateNotFound"
    assert "generation=" in r.json()["error"]["message"]
    assert graph.get(link).status_code == 200
    assert emu.admin("POST", "expire", {"scope": "mail"}).status_code == 200
    assert graph.get(link).status_code == 410


def test_list_messages_with_skip_paging(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 0)
    total = graph.get(f"/users/{uid}/mailFolders/inbox").json()["totalItemCount"]
    seen: list[str] = []
    r = graph.get(f"/users/{uid}/mailFolders/inbox/messages", params={"$top": "8", "$select": "subject"})
    while True:
        body = r.json()
        seen.extend(m["id"] for m in body["value"])
        if "@odata.nextLink" not in body:
            break
        assert "$skip=" in body["@odata.nextLink"]
        r = graph.get(body["@odata.nextLink"])
    assert len(seen) == len(set(seen)) == total


def test_mailbox_wide_message_list_covers_every_folder(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 2)
    folders, _, _ = drain(graph, f"/users/{uid}/mailFolders/delta")
    total = sum(f["totalItemCount"] for f in folders)
    seen: list[str] = []
    r = graph.get(f"/users/{uid}/messages", params={"$top": "50", "$select": "parentFolderId"})
    while True:
        body = r.json()
        seen.extend(m["id"] for m in body["value"])
        if "@odata.nextLink" not in body:
            break
        r = graph.get(body["@odata.nextLink"])
    assert len(seen) == len(set(seen)) == total


def test_payloads_of_the_wrong_shape_are_rejected_cleanly(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 1)
    mid = graph.get(f"/users/{uid}/mailFolders/inbox/messages", params={"$top": "1"}).json()["value"][0]["id"]
    before = graph.get(f"/users/{uid}/messages/{mid}").json()
    for body in ({"body": "not an object"}, {"toRecipients": "x"}, {"flag": 3, "isRead": True}, [1, 2]):
        r = graph.patch(f"/users/{uid}/messages/{mid}", json=body)
        assert r.status_code == 400, (body, r.text)
    assert graph.get(f"/users/{uid}/messages/{mid}").json() == before
    r = graph.post(f"/users/{uid}/mailFolders/inbox/messages", json={"singleValueExtendedProperties": 5})
    assert r.status_code == 400


def test_folder_counts_follow_moves_deletes_and_creates(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 4)

    def total(folder: str) -> int:
        return int(graph.get(f"/users/{uid}/mailFolders/{folder}").json()["totalItemCount"])

    inbox, archive = total("inbox"), total("archive")
    mids = [
        m["id"]
        for m in graph.get(f"/users/{uid}/mailFolders/inbox/messages", params={"$top": "3"}).json()["value"]
    ]
    graph.post(f"/users/{uid}/messages/{mids[0]}/move", json={"destinationId": "archive"}, headers=IMMUTABLE)
    graph.post(f"/users/{uid}/messages/{mids[1]}/move", json={"destinationId": "archive"})
    graph.delete(f"/users/{uid}/messages/{mids[2]}")
    graph.post(f"/users/{uid}/mailFolders/inbox/messages", json={"subject": "counted"})
    assert total("inbox") == inbox - 3 + 1
    assert total("archive") == archive + 2
    listed = graph.get(f"/users/{uid}/mailFolders/archive/messages", params={"$top": "1000"}).json()["value"]
    assert len(listed) == archive + 2


def test_delta_change_type_and_received_filter(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 3)
    url = f"/users/{uid}/mailFolders/sentitems/messages/delta"
    links = {}
    for kind in ("created", "updated", "deleted"):
        _, links[kind], _ = drain(graph, url, IMMUTABLE, {"changeType": kind})
    every, _, _ = drain(graph, url, IMMUTABLE, {"$select": "receivedDateTime"})
    cut = sorted(m["receivedDateTime"] for m in every)[len(every) // 2]
    recent, recent_link, _ = drain(graph, url, IMMUTABLE, {"$filter": f"receivedDateTime ge {cut}",
                                                            "$select": "receivedDateTime"})  # fmt: skip
    assert 0 < len(recent) < len(every) and all(m["receivedDateTime"] >= cut for m in recent)
    existing = [m["id"] for m in every]
    graph.patch(f"/users/{uid}/messages/{existing[0]}", json={"isRead": True})
    graph.delete(f"/users/{uid}/messages/{existing[1]}")
    new = graph.post(f"/users/{uid}/mailFolders/sentitems/messages", json={"subject": "fresh"}).json()["id"]
    assert [m["id"] for m in drain(graph, links["created"], IMMUTABLE)[0]] == [new]
    assert [m["id"] for m in drain(graph, links["updated"], IMMUTABLE)[0]] == [existing[0]]
    deleted = drain(graph, links["deleted"], IMMUTABLE)[0]
    assert [m["id"] for m in deleted] == [existing[1]] and "@removed" in deleted[0]
    # New mail is received now, so it passes the baked filter.
    assert new in [m["id"] for m in drain(graph, recent_link, IMMUTABLE)[0]]
    assert graph.get(url, params={"changeType": "moved"}).status_code == 400
    assert graph.get(url, params={"$filter": "subject eq 'x'"}).status_code == 400


def test_repeated_prefer_headers_combine(emu: Emu) -> None:
    uid = _uid(emu, 0)
    token = emu.token()
    headers = [
        ("Authorization", f"Bearer {token}"),
        ("Prefer", "odata.maxpagesize=3"),
        ("Prefer", 'IdType="ImmutableId"'),
    ]
    r = httpx.get(f"{emu.graph}/users/{uid}/mailFolders/inbox/messages/delta", headers=headers)
    assert len(r.json()["value"]) == 3 and r.headers["Preference-Applied"] == "odata.maxpagesize=3"


def test_folder_move_shows_in_folder_delta(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 4)
    _, link, _ = drain(graph, f"/users/{uid}/mailFolders/delta")
    receipts = next(
        f for f in graph.get(f"/users/{uid}/mailFolders").json()["value"] if f["displayName"] == "Receipts"
    )
    archive = graph.get(f"/users/{uid}/mailFolders/archive").json()
    moved = graph.post(f"/users/{uid}/mailFolders/{receipts['id']}/move", json={"destinationId": "archive"})
    assert moved.status_code == 201 and moved.json()["parentFolderId"] == archive["id"]
    changes, _, _ = drain(graph, link)
    assert [(c["id"], c["parentFolderId"]) for c in changes] == [(receipts["id"], archive["id"])]
    assert (
        graph.post(f"/users/{uid}/mailFolders/inbox/move", json={"destinationId": "archive"}).status_code
        == 403
    )
    loop = graph.post(
        f"/users/{uid}/mailFolders/{receipts['id']}/move", json={"destinationId": receipts["id"]}
    )
    assert loop.status_code == 400


def test_body_content_type_preference(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 1)
    html = {"subject": "html", "body": {"contentType": "html", "content": "<p>Hello <b>you</b></p>"}}
    created = graph.post(f"/users/{uid}/mailFolders/inbox/messages", json=html)
    mid = created.json()["id"]
    assert graph.get(f"/users/{uid}/messages/{mid}").json()["body"]["contentType"] == "html"
    r = graph.get(f"/users/{uid}/messages/{mid}", headers={"Prefer": 'outlook.body-content-type="text"'})
    assert r.json()["body"] == {"contentType": "text", "content": "Hello you"}
    assert r.headers["Preference-Applied"] == 'outlook.body-content-type="text"'


def test_expand_attachments_on_a_message(graph: httpx.Client, emu: Emu) -> None:
    uid = _uid(emu, 0)
    url = f"/users/{uid}/mailFolders/inbox/messages/delta"
    items, _, _ = drain(graph, url, {"Prefer": "odata.maxpagesize=200"}, {"$select": "hasAttachments"})
    m = next(i for i in items if i.get("hasAttachments"))
    full = graph.get(f"/users/{uid}/messages/{m['id']}", params={"$expand": "attachments"}).json()
    listed = graph.get(f"/users/{uid}/messages/{m['id']}/attachments").json()["value"]
    assert full["attachments"] == listed
    assert graph.get(f"/users/{uid}/messages/{m['id']}", params={"$expand": "extensions"}).status_code == 400
