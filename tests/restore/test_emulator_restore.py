"""Restore to the original place and to another one, against the emulator over real HTTPS: read a
mailbox and a OneDrive through the connector, back them up into the catalog and the repository,
delete and change things in the tenant, restore through the v3 API, verify the tenant through Graph."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from m365vault.catalog import EntryKind, ObjectKind
from m365vault.m365 import GraphClient, Scope, enumeration, writers
from m365vault.m365 import content as graph_content
from tests.restore.backup import Backup, Entry, make_mime
from tests.restore.conftest import NOW
from tests.restore.emulator_tenant import Tenant, emulated_tenant

R = "/v3/RestoreSessions/{sid}/Organization"
IMMUTABLE = writers.IMMUTABLE_IDS


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    with emulated_tenant(tmp_path_factory.mktemp("restore-emulator")) as found:
        yield found


async def _mime(client: GraphClient, user: str, message_id: str) -> bytes:
    return b"".join([c async for c in graph_content.message_mime(client, user, message_id)])


async def _inbox(
    client: GraphClient, user: str, folder: str = "inbox", top: int = 50
) -> list[dict[str, Any]]:
    body = await client.get_json(
        f"/users/{user}/mailFolders/{folder}/messages",
        scope=Scope.mailbox(user),
        params={
            "$top": str(top),
            "$select": "id,subject,lastModifiedDateTime,receivedDateTime,isRead,parentFolderId",
        },
        headers=IMMUTABLE,
    )
    return list(body["value"])


def test_mail_restore_to_original_and_to_another_mailbox(tenant: Tenant) -> None:
    user, other = tenant.users
    uid = user["id"]
    at = NOW - timedelta(hours=6)

    async def backup(client: GraphClient, b: Backup) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        inbox = await client.get_json(
            f"/users/{uid}/mailFolders/inbox", scope=Scope.mailbox(uid), headers=IMMUTABLE
        )
        messages = (await _inbox(client, uid))[:3]
        obj = b.object(ObjectKind.MAILBOX, uid, at, name=user.get("displayName", ""), email=user.get("mail"))
        mimes = {m["id"]: await _mime(client, uid, m["id"]) for m in messages}
        entries = [Entry(inbox["id"], EntryKind.FOLDER, None, name="Inbox", item_class="Mail")]
        entries += [
            Entry(
                m["id"],
                EntryKind.ITEM,
                inbox["id"],
                mimes[m["id"]],
                subject=m["subject"],
                item_class="IPM.Note",
                extras={"lastModifiedDateTime": m["lastModifiedDateTime"]},
            )
            for m in messages
        ]
        await b.page(obj, at, entries)
        return messages, mimes

    messages, mimes = asyncio.run(tenant.backup(backup))
    assert len(messages) == 3
    gone, changed, _unchanged = messages

    async def damage(client: GraphClient) -> None:
        await client.request("DELETE", f"/users/{uid}/messages/{gone['id']}", scope=Scope.mailbox(uid))
        await client.send_json(
            "PATCH",
            f"/users/{uid}/messages/{changed['id']}",
            {"subject": "tampered"},
            scope=Scope.mailbox(uid),
        )

    tenant.run(damage)
    env = tenant.env
    sid = env.explore("vex")
    action = R.format(sid=sid) + f"/Mailboxes/{uid}/Action"
    nothing = env.client.post(
        action, json={"restoretoOriginallocation": {"changedItems": "false", "deletedItems": "false"}}
    )
    assert nothing.json() == {
        "createdItemsCount": 0,
        "mergedItemsCount": 0,
        "failedItemsCount": 0,
        "skippedItemsCount": 3,
    }
    r = env.client.post(
        action,
        json={
            "RestoreToOriginalLocation": {"userName": "admin@fabrikam.onmicrosoft.com", "userPassword": "x"}
        },
        headers={"Accept": "application/json-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "createdItemsCount": 2,
        "mergedItemsCount": 0,
        "failedItemsCount": 0,
        "skippedItemsCount": 1,
    }

    async def inbox_now(client: GraphClient) -> dict[str, list[bytes]]:
        found: dict[str, list[bytes]] = {}
        for m in await _inbox(client, uid, top=200):
            if m["subject"] in (gone["subject"], changed["subject"], "tampered"):
                found.setdefault(m["subject"], []).append(await _mime(client, uid, m["id"]))
        return found

    now = tenant.run(inbox_now)
    assert now[gone["subject"]] == [mimes[gone["id"]]]  # the MIME byte for byte
    assert mimes[changed["id"]] in now[changed["subject"]]
    assert "tampered" in now  # the changed original stays; the backed-up one comes back beside it

    # To another mailbox, under a folder of its own, unread.
    target = other.get("userPrincipalName") or other["id"]
    body = {
        "restoreTo": {
            "casServer": "outlook.office365.com",
            "mailbox": target,
            "folder": "Recovered",
            "markRestoredAsUnread": "true",
            "items": [{"id": m["id"]} for m in messages],
        }
    }
    r = env.client.post(R.format(sid=sid) + f"/Mailboxes/{uid}/Items/Action", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["createdItemsCount"] == 3 and r.json()["failedItemsCount"] == 0

    async def recovered(client: GraphClient) -> list[tuple[bytes, bool]]:
        oid = other["id"]
        top = [f async for f in enumeration.list_mail_folders(client, oid)]
        folder = next(f for f in top if f["displayName"] == "Recovered")
        inner = [f async for f in enumeration.list_mail_folders(client, oid, folder["id"])]
        assert [f["displayName"] for f in inner] == ["Inbox"]
        return [
            (await _mime(client, oid, m["id"]), m["isRead"])
            for m in await _inbox(client, oid, inner[0]["id"])
        ]

    copies = tenant.run(recovered)
    assert sorted(m for m, _ in copies) == sorted(mimes.values())
    assert [read for _, read in copies] == [False, False, False]
    events = env.get(f"/v3/RestoreSessions/{sid}/Events")["results"]
    assert [e["type"] for e in events if e["type"] == "Restore"] == ["Restore"] * 3


def test_file_restore_to_original_and_to_another_onedrive(tenant: Tenant) -> None:
    user, other = tenant.users
    uid = user["id"]
    at = NOW - timedelta(hours=5)

    async def backup(client: GraphClient, b: Backup) -> tuple[str, list[dict[str, Any]], dict[str, bytes]]:
        drive = await enumeration.get_user_drive(client, uid)
        assert drive is not None
        children = await client.get_json(
            f"/drives/{drive['id']}/items/root/children", scope=Scope.sharepoint()
        )
        files = sorted((c for c in children["value"] if "file" in c), key=lambda c: c["size"])[:2]
        data = {
            f["id"]: b"".join([c async for c in graph_content.download_file(client, drive["id"], f["id"])])
            for f in files
        }
        obj = b.object(ObjectKind.ONEDRIVE, uid, at, name=user.get("displayName", ""))
        await b.page(
            obj,
            at,
            [
                Entry(
                    f["id"],
                    EntryKind.DOCUMENT,
                    None,
                    data[f["id"]],
                    name=f["name"],
                    extras={"quickXorHash": f["file"].get("hashes", {}).get("quickXorHash")},
                )
                for f in files
            ],
        )
        return str(drive["id"]), files, data

    drive_id, files, data = asyncio.run(tenant.backup(backup))
    assert len(files) == 2
    removed, overwritten = files

    async def damage(client: GraphClient) -> None:
        await client.request("DELETE", f"/drives/{drive_id}/items/{removed['id']}", scope=Scope.sharepoint())

        async def junk() -> Any:
            yield b"not what was backed up"

        await writers.upload_file(client, drive_id, size=22, content=junk(), item_id=overwritten["id"])

    tenant.run(damage)
    env = tenant.env
    sid = env.explore("veod")
    r = env.client.post(
        R.format(sid=sid) + f"/OneDrives/{uid}/Action",
        json={"restoretoOriginallocation": {"documentVersion": "last", "documentAction": "overwrite"}},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "createdItemsCount": 1,
        "mergedItemsCount": 1,
        "failedItemsCount": 0,
        "skippedItemsCount": 0,
    }

    async def read(client: GraphClient, drive: str, path: str) -> bytes:
        item = await enumeration.find_drive_item(client, drive, path)
        assert item is not None, path
        return b"".join([c async for c in graph_content.download_file(client, drive, item["id"])])

    async def check_original(client: GraphClient) -> None:
        for f in files:
            assert await read(client, drive_id, f["name"]) == data[f["id"]]

    tenant.run(check_original)
    again = env.client.post(
        R.format(sid=sid) + f"/OneDrives/{uid}/Action", json={"restoretoOriginallocation": None}
    )
    assert (
        again.json()["skippedItemsCount"] == 1
    )  # the recreated file has a new id: only the other is checked

    body = {
        "copyTo": {
            "onedrive": {"id": other["id"]},
            "folder": "Restored/From backup",
            "documents": [{"id": f["id"]} for f in files],
        }
    }
    r = env.client.post(R.format(sid=sid) + f"/OneDrives/{uid}/Documents/Action", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["createdItemsCount"] == 2

    async def check_copy(client: GraphClient) -> None:
        drive = await enumeration.get_user_drive(client, other["id"])
        assert drive is not None
        for f in files:
            assert await read(client, drive["id"], f"Restored/From backup/{f['name']}") == data[f["id"]]

    tenant.run(check_copy)


def test_sharepoint_documents_restore_in_place(tenant: Tenant) -> None:
    at = NOW - timedelta(hours=4)

    async def backup(
        client: GraphClient, b: Backup
    ) -> tuple[str, str, list[dict[str, Any]], dict[str, bytes]]:
        site: dict[str, Any] | None = None
        async for page in enumeration.list_sites(client):
            site = site or (page.items[0] if page.items else None)
        assert site is not None
        libraries = [d async for d in enumeration.list_site_drives(client, site["id"])]
        library = libraries[0]
        children = await client.get_json(
            f"/drives/{library['id']}/items/root/children", scope=Scope.sharepoint()
        )
        files = sorted((c for c in children["value"] if "file" in c), key=lambda c: c["size"])[:2]
        data = {
            f["id"]: b"".join([c async for c in graph_content.download_file(client, library["id"], f["id"])])
            for f in files
        }
        obj = b.object(
            ObjectKind.SITE, site["id"], at, name=site.get("displayName") or "site", url=site.get("webUrl")
        )
        lib = {"driveId": library["id"]}
        entries = [Entry(library["id"], EntryKind.LIBRARY, None, name=library["name"], extras=lib)]
        entries += [
            Entry(f["id"], EntryKind.DOCUMENT, library["id"], data[f["id"]], name=f["name"], extras=lib)
            for f in files
        ]
        await b.page(obj, at, entries)
        return str(site["id"]), str(library["id"]), files, data

    site_id, drive_id, files, data = asyncio.run(tenant.backup(backup))
    assert len(files) == 2

    async def damage(client: GraphClient) -> None:
        await client.request("DELETE", f"/drives/{drive_id}/items/{files[0]['id']}", scope=Scope.sharepoint())

    tenant.run(damage)
    env = tenant.env
    sid = env.explore("vesp")
    base = R.format(sid=sid) + f"/Sites/{site_id}"
    listed = env.get(base + "/Documents", parentId=drive_id)
    assert sorted(d["id"] for d in listed["results"]) == sorted(f["id"] for f in files)
    wrong = env.client.post(
        base + "/Documents/Action",
        json={"restoreTo": {"list": "Elsewhere", "documents": [{"id": files[0]["id"]}]}},
    )
    assert wrong.status_code == 400 and "library" in wrong.json()["message"]
    body = {
        "restoreTo": {
            "userName": "admin",
            "userPassword": "x",
            "documentVersion": "last",
            "documentLastVersionAction": "merge",
            "restorePermissions": "true",
            "documents": [{"Id": f["id"]} for f in files],
        }
    }
    r = env.client.post(base + "/Documents/Action", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "createdItemsCount": 1,
        "mergedItemsCount": 0,
        "failedItemsCount": 0,
        "skippedItemsCount": 1,
    }

    async def check(client: GraphClient) -> None:
        item = await enumeration.find_drive_item(client, drive_id, files[0]["name"])
        assert item is not None
        got = b"".join([c async for c in graph_content.download_file(client, drive_id, item["id"])])
        assert got == data[files[0]["id"]]

    tenant.run(check)


def test_message_over_the_mime_cap_goes_back_through_the_json_route(tenant: Tenant) -> None:
    other = tenant.users[1]
    at = NOW - timedelta(hours=3)
    payload = os.urandom(5 * 1024 * 1024)
    mime = make_mime("Huge scan", "The scan is attached.\n", attachment=payload)

    async def backup(client: GraphClient, b: Backup) -> None:
        obj = b.object(ObjectKind.MAILBOX, "u-left-company", at, name="Gone", email="gone@fabrikam.com")
        await b.page(
            obj,
            at,
            [
                Entry("big-inbox", EntryKind.FOLDER, None, name="Inbox", item_class="Mail"),
                Entry(
                    "big-1",
                    EntryKind.ITEM,
                    "big-inbox",
                    mime,
                    subject="Huge scan",
                    item_class="IPM.Note",
                    received_at=at,
                ),
            ],
        )

    asyncio.run(tenant.backup(backup))
    env = tenant.env
    sid = env.explore("vex")
    body = {"restoreTo": {"mailbox": other["id"], "folder": "Big restore", "items": [{"id": "big-1"}]}}
    r = env.client.post(R.format(sid=sid) + "/Mailboxes/u-left-company/Items/Action", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "createdItemsCount": 1,
        "mergedItemsCount": 0,
        "failedItemsCount": 0,
        "skippedItemsCount": 0,
    }

    async def check(client: GraphClient) -> None:
        oid = other["id"]
        top = [f async for f in enumeration.list_mail_folders(client, oid)]
        folder = next(f for f in top if f["displayName"] == "Big restore")
        inner = [f async for f in enumeration.list_mail_folders(client, oid, folder["id"])]
        (message,) = await _inbox(client, oid, inner[0]["id"])
        assert message["subject"] == "Huge scan"
        listed = await client.get_json(
            f"/users/{oid}/messages/{message['id']}/attachments", scope=Scope.mailbox(oid)
        )
        (attachment,) = listed["value"]
        assert attachment["name"] == "data.bin" and attachment["size"] == len(payload)
        data = b"".join(
            [c async for c in graph_content.attachment_content(client, oid, message["id"], attachment["id"])]
        )
        assert data == payload

    tenant.run(check)
