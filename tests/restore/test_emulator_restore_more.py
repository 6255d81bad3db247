"""More restores against the emulator over real HTTPS: calendar items and contacts (their Graph
JSON as backed up), the mail exclusions, SharePoint list items and restoreTo another site or
library, and the bulk restore of whole OneDrives. Each test backs up what it reads from the tenant,
changes the tenant, restores through the v3 API and checks the tenant through Graph."""

from __future__ import annotations

import asyncio
import json
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
    with emulated_tenant(tmp_path_factory.mktemp("restore-emulator-more")) as found:
        yield found


def stats(created: int = 0, merged: int = 0, failed: int = 0, skipped: int = 0) -> dict[str, int]:
    return {
        "createdItemsCount": created,
        "mergedItemsCount": merged,
        "failedItemsCount": failed,
        "skippedItemsCount": skipped,
    }


def as_json(item: dict[str, Any]) -> bytes:
    """What the engine stores for an event, a contact or a list item: its Graph JSON."""
    return json.dumps(item, sort_keys=True).encode()


async def _all(client: GraphClient, path: str, scope: Scope) -> list[dict[str, Any]]:
    body = await client.get_json(path, scope=scope, params={"$top": "1000"}, headers=IMMUTABLE)
    return list(body["value"])


def test_calendar_items_and_contacts_restore_in_place_and_elsewhere(tenant: Tenant) -> None:
    user, other = tenant.users
    uid, oid = user["id"], other["id"]
    at = NOW - timedelta(hours=6)

    async def backup(client: GraphClient, b: Backup) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        scope = Scope.mailbox(uid)
        events = (await _all(client, f"/users/{uid}/events", scope))[:3]
        contacts = (await _all(client, f"/users/{uid}/contacts", scope))[:2]
        assert len(events) == 3 and len(contacts) == 2
        # As backed up before the tenant changed: event 1 had another changeKey, contact 0
        # has since been deleted from the tenant (here: an id the tenant no longer knows).
        events[1] = {**events[1], "changeKey": "older-change-key"}
        contacts[0] = {**contacts[0], "id": "AAMk-contact-deleted-since"}
        folder = contacts[1]["parentFolderId"]
        obj = b.object(ObjectKind.MAILBOX, uid, at, name=user.get("displayName", ""), email=user.get("mail"))
        entries = [
            Entry("calendar", EntryKind.FOLDER, None, name="Calendar", item_class="Calendar"),
            Entry(folder, EntryKind.FOLDER, None, name="Contacts", item_class="Contacts"),
        ]
        entries += [
            Entry(
                e["id"],
                EntryKind.ITEM,
                "calendar",
                as_json(e),
                subject=e["subject"],
                item_class="IPM.Appointment",
            )
            for e in events
        ]
        entries += [
            Entry(
                c["id"],
                EntryKind.ITEM,
                folder,
                as_json(c),
                subject=c["displayName"],
                item_class="IPM.Contact",
            )
            for c in contacts
        ]
        await b.page(obj, at, entries)
        return events, contacts

    events, contacts = asyncio.run(tenant.backup(backup))

    async def damage(client: GraphClient) -> None:
        await client.request("DELETE", f"/users/{uid}/events/{events[0]['id']}", scope=Scope.mailbox(uid))

    tenant.run(damage)
    env = tenant.env
    sid = env.explore("vex")
    action = R.format(sid=sid) + f"/Mailboxes/{uid}/Action"
    # Deleted ones only: event 0 and contact 0 come back; the changed event 1 and the rest are left.
    r = env.client.post(action, json={"restoretoOriginallocation": {"changedItems": "false"}})
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=2, skipped=3)

    async def now(client: GraphClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        scope = Scope.mailbox(uid)
        return await _all(client, f"/users/{uid}/events", scope), await _all(
            client, f"/users/{uid}/contacts", scope
        )

    listed_events, listed_contacts = tenant.run(now)
    back = [e for e in listed_events if e["subject"] == events[0]["subject"]]
    assert len(back) == 1 and back[0]["id"] != events[0]["id"]
    for key in ("start", "end", "location", "body", "attendees", "isAllDay", "showAs"):
        assert back[0][key] == events[0][key], key
    twins = [c for c in listed_contacts if c["displayName"] == contacts[0]["displayName"]]
    assert len(twins) == 2  # the original (still in the tenant) and the restored copy
    restored = next(c for c in twins if c["id"] != contacts[0]["id"])
    for key in ("givenName", "surname", "emailAddresses", "businessPhones", "companyName", "jobTitle"):
        assert restored[key] == contacts[0][key], key
    assert restored["parentFolderId"] == contacts[1]["parentFolderId"]  # its own folder

    # Changed ones too now (defaults): event 1, and what is still missing by its original id.
    r = env.client.post(action, json={"restoretoOriginallocation": None})
    assert r.json() == stats(created=3, skipped=2)

    # To another mailbox: every chosen item is written.
    body = {"restoreTo": {"mailbox": oid, "items": [{"id": events[2]["id"]}, {"id": contacts[1]["id"]}]}}
    r = env.client.post(R.format(sid=sid) + f"/Mailboxes/{uid}/Items/Action", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=2)

    async def elsewhere(client: GraphClient) -> None:
        scope = Scope.mailbox(oid)
        got = [
            e
            for e in await _all(client, f"/users/{oid}/events", scope)
            if e["subject"] == events[2]["subject"]
        ]
        assert got and got[-1]["start"] == events[2]["start"]
        names = [c["displayName"] for c in await _all(client, f"/users/{oid}/contacts", scope)]
        assert contacts[1]["displayName"] in names

    tenant.run(elsewhere)


def test_restore_in_place_honours_exclude_drafts_and_deleted_items(tenant: Tenant) -> None:
    user = tenant.users[0]
    uid = user["id"]
    at = NOW - timedelta(hours=5)
    mails = {
        "inbox": make_mime("Keep me", "From the inbox.\n"),
        "drafts": make_mime("Half written", "A draft.\n"),
        "deleteditems": make_mime("Thrown away", "Deleted.\n"),
    }

    async def backup(client: GraphClient, b: Backup) -> dict[str, str]:
        folders: dict[str, str] = {}
        entries = []
        for well_known, mime in mails.items():
            folder = await client.get_json(
                f"/users/{uid}/mailFolders/{well_known}", scope=Scope.mailbox(uid), headers=IMMUTABLE
            )
            folders[well_known] = folder["id"]
            entries.append(
                Entry(folder["id"], EntryKind.FOLDER, None, name=folder["displayName"], item_class="Mail")
            )
            # Items the tenant no longer has: each would be restored unless excluded.
            entries.append(
                Entry(
                    f"gone-{well_known}",
                    EntryKind.ITEM,
                    folder["id"],
                    mime,
                    subject=well_known,
                    item_class="IPM.Note",
                )
            )
        obj = b.object(ObjectKind.MAILBOX, uid, at, name=user.get("displayName", ""), email=user.get("mail"))
        await b.page(obj, at, entries)
        return folders

    folders = asyncio.run(tenant.backup(backup))
    env = tenant.env
    sid = env.explore("vex", at=at + timedelta(minutes=1))
    base = R.format(sid=sid) + f"/Mailboxes/{uid}/Items/Action"
    chosen = [{"id": f"gone-{k}"} for k in mails]
    bad = env.client.post(
        base, json={"restoretoOriginallocation": {"excludeDrafts": "maybe", "items": chosen}}
    )
    assert bad.status_code == 400 and "excludedrafts" in bad.json()["message"].lower()
    body = {
        "restoretoOriginallocation": {
            "excludeDrafts": "true",
            "excludeDeletedItems": True,
            "excludeInPlaceHoldItems": "true",  # accepted: holds (Recoverable Items) are not backed up
            "excludeLitigationHoldItems": "true",
            "items": chosen,
        }
    }
    r = env.client.post(base, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=1, skipped=2)

    async def subjects(client: GraphClient, folder: str) -> list[str]:
        listed = await client.get_json(
            f"/users/{uid}/mailFolders/{folder}/messages",
            scope=Scope.mailbox(uid),
            params={"$top": "500", "$select": "subject"},
        )
        return [m["subject"] for m in listed["value"]]

    assert "Keep me" in tenant.run(lambda c: subjects(c, folders["inbox"]))
    assert "Half written" not in tenant.run(lambda c: subjects(c, folders["drafts"]))
    r = env.client.post(base, json={"restoretoOriginallocation": {"items": chosen}})
    assert r.json() == stats(created=3)
    assert "Half written" in tenant.run(lambda c: subjects(c, folders["drafts"]))
    assert "Thrown away" in tenant.run(lambda c: subjects(c, folders["deleteditems"]))


async def _sites(client: GraphClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in enumeration.list_sites(client):
        found.extend(page.items)
    return found


async def _tasks_list(client: GraphClient, site_id: str) -> dict[str, Any]:
    return next(
        [
            lst async for lst in enumeration.list_lists(client, site_id) if lst["displayName"] == "Tasks"
        ].__iter__()
    )


async def _list_items(client: GraphClient, site_id: str, list_id: str) -> list[dict[str, Any]]:
    body = await client.get_json(
        f"/sites/{site_id}/lists/{list_id}/items",
        scope=Scope.sharepoint(),
        params={"$expand": "fields", "$top": "500"},
    )
    return list(body["value"])


def test_list_items_restore_in_place_and_to_another_site(tenant: Tenant) -> None:
    at = NOW - timedelta(hours=4)

    async def backup(client: GraphClient, b: Backup) -> dict[str, Any]:
        sites = [s for s in await _sites(client) if "personal" not in s.get("webUrl", "")]
        source, target = sites[0], sites[1]
        tasks = await _tasks_list(client, source["id"])
        items = (await _list_items(client, source["id"], tasks["id"]))[:3]
        assert len(items) == 3
        obj = b.object(ObjectKind.SITE, source["id"], at, name=source.get("displayName") or "site")
        entries = [Entry(tasks["id"], EntryKind.LIST, None, name="Tasks")]
        entries += [
            Entry(i["id"], EntryKind.ITEM, tasks["id"], as_json(i), name=i["fields"].get("Title"))
            for i in items
        ]
        await b.page(obj, at, entries)
        other_tasks = await _tasks_list(client, target["id"])
        return {
            "site": source["id"],
            "list": tasks["id"],
            "items": items,
            "target": target["id"],
            "target_list": other_tasks["id"],
        }

    found = asyncio.run(tenant.backup(backup))
    site, list_id, items = found["site"], found["list"], found["items"]
    gone, changed, same = items

    async def damage(client: GraphClient) -> None:
        await client.request(
            "DELETE", f"/sites/{site}/lists/{list_id}/items/{gone['id']}", scope=Scope.sharepoint()
        )
        await writers.update_list_item(client, site, list_id, changed["id"], {"Title": "tampered"})

    tenant.run(damage)
    env = tenant.env
    sid = env.explore("vesp")
    base = R.format(sid=sid) + f"/Sites/{site}"
    listed = env.get(base + "/Items", parentId=list_id)
    assert sorted(i["id"] for i in listed["results"]) == sorted(i["id"] for i in items)
    none = env.client.post(
        base + f"/Lists/{list_id}/Action",
        json={"restoreTo": {"changedItems": "false", "deletedItems": "false"}},
    )
    assert none.json() == stats(skipped=3)
    r = env.client.post(
        base + f"/Lists/{list_id}/Action", json={"restoreTo": {"userName": "admin", "userPassword": "x"}}
    )
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=1, merged=1, skipped=1)

    def fields_of(entry: dict[str, Any]) -> dict[str, Any]:
        skip = {"id", "Modified", "Created", "@odata.etag"}
        return {k: v for k, v in entry["fields"].items() if k not in skip}

    async def check_in_place(client: GraphClient) -> None:
        now = {i["id"]: i for i in await _list_items(client, site, list_id)}
        assert fields_of(now[changed["id"]]) == fields_of(changed)  # overwritten back
        assert gone["id"] not in now
        copies = [i for i in now.values() if fields_of(i) == fields_of(gone)]
        assert len(copies) == 1  # recreated with its backed-up fields

    tenant.run(check_in_place)

    # To another site's list, named by `alias` (site id) and `list` (its name): every item created.
    wrong_site = env.client.post(
        base + "/Items/Action", json={"restoreTo": {"alias": "no-such-site", "items": [{"id": same["id"]}]}}
    )
    assert wrong_site.status_code == 400 and "no-such-site" in wrong_site.json()["message"]
    wrong_list = env.client.post(
        base + "/Items/Action",
        json={"restoreTo": {"alias": found["target"], "list": "Nope", "items": [{"id": same["id"]}]}},
    )
    assert wrong_list.status_code == 400 and "Nope" in wrong_list.json()["message"]
    before = tenant.run(lambda c: _list_items(c, found["target"], found["target_list"]))
    body = {
        "restoreTo": {"alias": found["target"], "list": "tasks", "items": [{"id": i["id"]} for i in items]}
    }
    r = env.client.post(base + "/Items/Action", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=3)
    after = tenant.run(lambda c: _list_items(c, found["target"], found["target_list"]))
    new = [i for i in after if i["id"] not in {b["id"] for b in before}]
    assert sorted(json.dumps(fields_of(i), sort_keys=True) for i in new) == sorted(
        json.dumps(fields_of(i), sort_keys=True) for i in items
    )


def test_documents_restore_to_another_library_and_site(tenant: Tenant) -> None:
    at = NOW - timedelta(hours=3)

    async def backup(client: GraphClient, b: Backup) -> dict[str, Any]:
        sites = [s for s in await _sites(client) if "personal" not in s.get("webUrl", "")]
        counts = {
            s["id"]: len([d async for d in enumeration.list_site_drives(client, s["id"])]) for s in sites
        }
        source = next(s for s in sites if counts[s["id"]] > 1)
        target = next(s for s in sites if s["id"] != source["id"])
        drives = {d["name"]: d["id"] async for d in enumeration.list_site_drives(client, source["id"])}
        library = drives["Documents"]
        children = await client.get_json(f"/drives/{library}/items/root/children", scope=Scope.sharepoint())
        f = min((c for c in children["value"] if "file" in c), key=lambda c: c["size"])
        data = b"".join([c async for c in graph_content.download_file(client, library, f["id"])])
        obj = b.object(ObjectKind.SITE, source["id"], at, name=source.get("displayName") or "site")
        lib = {"driveId": library}
        await b.page(
            obj,
            at,
            [
                Entry(library, EntryKind.LIBRARY, None, name="Documents", extras=lib),
                Entry(f["id"], EntryKind.DOCUMENT, library, data, name=f["name"], extras=lib),
            ],
        )
        target_drives = {d["name"]: d["id"] async for d in enumeration.list_site_drives(client, target["id"])}
        return {
            "site": source["id"],
            "archive": drives["Archive"],
            "target": target["id"],
            "target_docs": target_drives["Documents"],
            "file": f,
            "data": data,
        }

    found = asyncio.run(tenant.backup(backup))
    env = tenant.env
    sid = env.explore("vesp")
    base = R.format(sid=sid) + f"/Sites/{found['site']}"
    doc = [{"id": found["file"]["id"]}]
    missing = env.client.post(
        base + "/Documents/Action", json={"restoreTo": {"list": "Elsewhere", "documents": doc}}
    )
    assert missing.status_code == 400 and "Elsewhere" in missing.json()["message"]
    r = env.client.post(
        base + "/Documents/Action",
        json={"restoreTo": {"list": "Archive", "folder": "Restored", "documents": doc}},
    )
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=1)
    # `list` naming a list (not a library) is for list items: documents stay in their own library
    # (here: in place, and the file is unchanged there).
    r = env.client.post(base + "/Documents/Action", json={"restoreTo": {"list": "Tasks", "documents": doc}})
    assert r.json() == stats(skipped=1)
    # The whole site into another one: its documents and its list items (if an earlier test
    # backed up list items of this site, they go to the target's list of the same name).
    list_items = len(env.get(base + "/Items", limit=1000)["results"])
    r = env.client.post(
        base + "/Action", json={"restoreTo": {"alias": found["target"], "restoreSubsites": "false"}}
    )
    assert r.status_code == 200, r.text
    assert r.json() == stats(created=1 + list_items)

    async def check(client: GraphClient) -> None:
        name = found["file"]["name"]
        for drive, path in ((found["archive"], f"Restored/{name}"), (found["target_docs"], name)):
            item = await enumeration.find_drive_item(client, drive, path)
            assert item is not None, path
            got = b"".join([c async for c in graph_content.download_file(client, drive, item["id"])])
            assert got == found["data"]

    tenant.run(check)


def test_bulk_restore_of_whole_onedrives(tenant: Tenant) -> None:
    at = NOW - timedelta(hours=2)

    async def backup(client: GraphClient, b: Backup) -> dict[str, tuple[str, dict[str, Any], bytes]]:
        out: dict[str, tuple[str, dict[str, Any], bytes]] = {}
        for user in tenant.users:
            drive = await enumeration.get_user_drive(client, user["id"])
            assert drive is not None
            children = await client.get_json(
                f"/drives/{drive['id']}/items/root/children", scope=Scope.sharepoint()
            )
            f = min((c for c in children["value"] if "file" in c), key=lambda c: c["size"])
            data = b"".join([c async for c in graph_content.download_file(client, drive["id"], f["id"])])
            obj = b.object(ObjectKind.ONEDRIVE, user["id"], at, name=user.get("displayName", ""))
            await b.page(obj, at, [Entry(f["id"], EntryKind.DOCUMENT, None, data, name=f["name"])])
            out[user["id"]] = (str(drive["id"]), f, data)
        return out

    drives = asyncio.run(tenant.backup(backup))

    async def damage(client: GraphClient) -> None:
        for drive, f, _ in drives.values():
            await client.request("DELETE", f"/drives/{drive}/items/{f['id']}", scope=Scope.sharepoint())

    tenant.run(damage)
    env = tenant.env
    sid = env.explore("veod", at=at + timedelta(minutes=1))
    action = R.format(sid=sid) + "/OneDrives/Action"
    chosen = [{"id": uid} for uid in drives] + [{"id": "not-backed-up"}]
    refused = env.client.post(action, json={"restoretoOriginallocation": {"oneDrives": chosen}})
    assert refused.status_code == 400 and "not-backed-up" in refused.json()["message"]
    assert env.client.post(action, json={"restoretoOriginallocation": None}).status_code == 400

    async def present(client: GraphClient) -> list[bytes | None]:
        out: list[bytes | None] = []
        for drive, f, _ in drives.values():
            item = await enumeration.find_drive_item(client, drive, f["name"])
            out.append(
                None
                if item is None
                else b"".join([c async for c in graph_content.download_file(client, drive, item["id"])])
            )
        return out

    assert tenant.run(present) == [None, None]  # the refused request wrote nothing
    body = {
        "restoretoOriginallocation": {
            "officeUsername": "admin@fabrikam.onmicrosoft.com",
            "officePassword": "x",
            "skipUnresolved": "true",
            "documentVersion": "last",
            "documentAction": "overwrite",
            "oneDrives": chosen,
        }
    }
    r = env.client.post(action, json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert {k: answer[k] for k in stats()} == stats(created=2)
    rows = {row["id"]: row for row in answer["oneDrives"]}
    assert [row["id"] for row in answer["oneDrives"]] == [c["id"] for c in chosen]
    for uid in drives:
        assert rows[uid]["status"] == "Success"
        assert {k: rows[uid][k] for k in stats()} == stats(created=1)
    assert rows["not-backed-up"]["status"] == "Unresolved" and rows["not-backed-up"]["message"]
    assert tenant.run(present) == [data for _, _, data in drives.values()]
    events = env.get(f"/v3/RestoreSessions/{sid}/Events")["results"]
    # One event per request: the refused one failed (its message says why), this one succeeded.
    assert [e["status"] for e in events if e["type"] == "Restore"] == ["Failed", "Success"]
