"""In-place archives through the real parts: the Entire organization job backs up every archive the
emulator's beta mailbox API shows, full then incremental after archive activity, and explore shows
each point in time; archive items restore into the archive through an import session."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, and_, or_, select

from m365vault.db.catalog_tables import entries_table, objects_table, versions_table
from tests.e2e.conftest import Product
from tests.support.product import wait_new_session, wait_session_end

ArchiveState = dict[str, dict[str, str]]  # user id -> {item id: subject}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _drain(graph: httpx.Client, url: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    r = graph.get(url, params=params, follow_redirects=True)
    while True:
        r.raise_for_status()
        body = r.json()
        out.extend(v for v in body["value"] if "@removed" not in v)
        if "@odata.nextLink" not in body:
            return out
        r = graph.get(body["@odata.nextLink"], follow_redirects=True)


def archive_state(product: Product) -> ArchiveState:
    """Every archive item with its subject, read through the emulator's beta routes."""
    expand = "singleValueExtendedProperties($filter=id eq 'String 0x0037')"
    state: ArchiveState = {}
    with product.emulator.graph() as graph:
        beta = str(graph.base_url).replace("/v1.0", "/beta")
        for user in graph.get("/users", params={"$top": "999"}).json()["value"]:
            r = graph.get(f"{beta}/users/{user['id']}/settings/exchange")
            archive = r.json().get("inPlaceArchiveMailboxId") if r.status_code == 200 else None
            if not archive:
                continue
            items: dict[str, str] = {}
            for folder in _drain(graph, f"{beta}/admin/exchange/mailboxes/{archive}/folders/delta"):
                url = f"{beta}/admin/exchange/mailboxes/{archive}/folders/{folder['id']}/items/delta"
                for item in _drain(graph, url, {"$expand": expand}):
                    props = item.get("singleValueExtendedProperties") or [{}]
                    items[item["id"]] = props[0].get("value", "")
            state[user["id"]] = items
    return state


def catalog_archives(db: Engine, at: datetime) -> ArchiveState:
    v, e, o = versions_table, entries_table, objects_table
    visible = and_(v.c.first_seen <= at, or_(v.c.gone_at.is_(None), v.c.gone_at > at))
    state: ArchiveState = {}
    with db.connect() as conn:
        rows = conn.execute(
            select(o.c.external_id, e.c.external_id.label("item"), v.c.subject, v.c.content_ref)
            .join(e, e.c.id == v.c.entry_id)
            .join(o, o.c.id == v.c.object_id)
            .where(visible, o.c.kind == "archive", v.c.kind == "item")
        ).all()
    for row in rows:
        assert row.content_ref, row
        state.setdefault(row.external_id, {})[row.item] = row.subject or ""
    return state


def test_archives_full_and_incremental_and_explore(product: Product) -> None:
    api, job = product.api, product.job
    assert product.action("start").status_code == 200
    full = wait_session_end(api, job["id"])
    assert full["status"] == "Success", full
    at_full = _time(full["endTime"])
    tenant_full = archive_state(product)
    assert tenant_full and all(tenant_full.values())
    assert catalog_archives(product.db, at_full) == tenant_full

    with product.emulator.admin() as admin:
        r = admin.post("/activity", json={"seed": 3, "newArchiveItems": 4, "deletedArchiveItems": 2})
        assert r.status_code == 200, r.text
        added = {a["id"] for a in r.json()["newArchiveItems"]}
        deleted = {d["id"] for d in r.json()["deletedArchiveItems"]}
    time.sleep(0.01)
    assert product.action("start").status_code == 200
    wait_new_session(api, job["id"], full["id"])
    incremental = wait_session_end(api, job["id"])
    assert incremental["status"] == "Success", incremental
    at_incremental = _time(incremental["endTime"])
    tenant_incremental = archive_state(product)
    assert tenant_incremental != tenant_full
    assert catalog_archives(product.db, at_incremental) == tenant_incremental
    assert catalog_archives(product.db, at_full) == tenant_full  # history stays

    owner = next(u for u, items in tenant_incremental.items() if added & set(items))
    new_item = next(iter(added & set(tenant_incremental[owner])))
    seen = [explore_archive(product, owner, at) for at in (at_full, at_incremental)]
    assert new_item not in seen[0] and new_item in seen[1]
    assert set(seen[1]) == set(tenant_incremental[owner])
    gone = deleted & set(tenant_full[owner])
    assert gone <= set(seen[0]) and not gone & set(seen[1])


def explore_archive(product: Product, owner: str, at: datetime) -> dict[str, dict[str, Any]]:
    """Vex at `at`: the archive is listed as `<user>:archive` (isArchive) with its items."""
    return explore_session(product, owner, at)[1]


def explore_session(product: Product, owner: str, at: datetime) -> tuple[str, dict[str, dict[str, Any]]]:
    api, job = product.api, product.job
    r = api.post(
        f"/v3/Jobs/{job['id']}/Action", json={"explore": {"type": "vex", "datetime": at.isoformat()}}
    )
    assert r.status_code == 201, r.text
    base = f"/v3/RestoreSessions/{r.json()['id']}/Organization/Mailboxes"
    mailboxes = api.get(base, params={"limit": 1000}).json()["results"]
    box = next(m for m in mailboxes if m["id"] == f"{owner}:archive")
    assert box["isArchive"] is True
    assert {f["name"] for f in api.get(f"{base}/{box['id']}/Folders").json()["results"]} >= {"Inbox"}
    items: dict[str, dict[str, Any]] = {}
    for folder in api.get(f"{base}/{box['id']}/Folders", params={"limit": 1000}).json()["results"]:
        listed = api.get(f"{base}/{box['id']}/Items", params={"folderId": folder["id"], "limit": 1000}).json()
        items.update({i["id"]: i for i in listed["results"]})
    assert all(i["subject"] and i["itemClass"] == "IPM.Note" for i in items.values())
    return f"{base}/{box['id']}", items


def test_archive_items_restore_by_import_and_refuse_readable_outputs(product: Product) -> None:
    """Runs after the backups above: the latest point in time holds every archive item."""
    api = product.api
    tenant = archive_state(product)
    owner = next(iter(tenant))
    base, items = explore_session(product, owner, datetime.now(tz=_time("2026-01-01T00:00:00Z").tzinfo))
    kept, doomed = sorted(items)[:2]
    with product.emulator.graph() as graph:  # one item is deleted from the archive after the backup
        beta = str(graph.base_url).replace("/v1.0", "/beta")
        archive = graph.get(f"{beta}/users/{owner}/settings/exchange").json()["inPlaceArchiveMailboxId"]
        folder = items[doomed]["_links"]["parent"]["href"].rstrip("/").split("/")[-1]
        r = graph.delete(f"{beta}/admin/exchange/mailboxes/{archive}/folders/{folder}/items/{doomed}")
        assert r.status_code == 204, r.text

    r = api.post(
        f"{base}/Items/Action", json={"restoretoOriginallocation": {"items": [{"id": kept}, {"id": doomed}]}}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "createdItemsCount": 1,
        "mergedItemsCount": 0,
        "failedItemsCount": 0,
        "skippedItemsCount": 1,
    }
    after = archive_state(product)[owner]
    assert doomed not in after and list(after.values()).count(items[doomed]["subject"]) >= 1

    into = {"restoreTo": {"mailbox": owner, "items": [{"id": kept}]}}
    r = api.post(f"{base}/Items/Action", json=into)
    assert r.status_code == 200 and r.json()["createdItemsCount"] == 1, r.text
    with product.emulator.graph() as graph:
        inbox = graph.get(f"/users/{owner}/mailFolders/inbox/messages", params={"$top": "999"}).json()[
            "value"
        ]
    assert items[kept]["subject"] in {m["subject"] for m in inbox}

    for action in ({"saveToEml": None}, {"exporttoPst": None}, {"sendtoDefaultAddress": None}):
        refused = api.post(f"{base}/Items/{kept}/Action", json=action)
        assert refused.status_code == 400, (action, refused.text)
        assert "restoretoOriginallocation" in refused.json()["message"]
