"""What the tenant holds (read through Graph from the emulator) and what the catalog holds at a
point in time (read from the server's database), in one comparable shape:
{("mailbox", user id): {message ids}, ("onedrive", user id): {drive item ids}}."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, and_, or_, select

from m365vault.db.catalog_tables import entries_table, objects_table, versions_table

State = dict[tuple[str, str], set[str]]


def _walk(graph: httpx.Client, url: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    next_url: str | None = url
    first = True
    while next_url:
        r = graph.get(next_url, params=params if first else None)
        r.raise_for_status()
        body = r.json()
        yield from body.get("value", [])
        next_url = body.get("@odata.nextLink")
        first = False


def tenant_state(graph: httpx.Client) -> State:
    state: State = {}
    for user in _walk(graph, "/users", {"$select": "id", "$top": "999"}):
        uid = user["id"]
        if graph.get(f"/users/{uid}/mailboxSettings").status_code == 200:
            ids: set[str] = set()
            for folder in _walk(graph, f"/users/{uid}/mailFolders/delta"):
                if "@removed" in folder:
                    continue
                messages = _walk(
                    graph,
                    f"/users/{uid}/mailFolders/{folder['id']}/messages",
                    {"$select": "id", "$top": "500"},
                )
                ids.update(m["id"] for m in messages)
            state[("mailbox", uid)] = ids
        drive = graph.get(f"/users/{uid}/drive")
        if drive.status_code == 200:
            items = _walk(graph, f"/drives/{drive.json()['id']}/root/delta")
            state[("onedrive", uid)] = {i["id"] for i in items if "root" not in i and "deleted" not in i}
    for group in _walk(graph, "/groups", {"$select": "id,groupTypes"}):
        if "Unified" in group.get("groupTypes", []):  # a group mailbox: its threads are its items
            threads = _walk(graph, f"/groups/{group['id']}/threads", {"$select": "id"})
            state[("mailbox", group["id"])] = {t["id"] for t in threads}
    return state


def catalog_state(engine: Engine, at: datetime) -> State:
    v, e, o = versions_table, entries_table, objects_table
    visible = and_(v.c.first_seen <= at, or_(v.c.gone_at.is_(None), v.c.gone_at > at))
    with engine.connect() as conn:
        containers = {
            row.entry_id: (row.extras or {}).get("collectionKind")
            for row in conn.execute(
                select(v.c.entry_id, v.c.extras).where(visible, v.c.kind.in_(["folder", "library", "list"]))
            )
        }
        rows = conn.execute(
            select(
                o.c.kind,
                o.c.external_id.label("owner"),
                e.c.external_id,
                v.c.kind.label("entry_kind"),
                v.c.parent_id,
                v.c.extras,
            )
            .join(e, e.c.id == v.c.entry_id)
            .join(o, o.c.id == v.c.object_id)
            .where(visible, o.c.kind.in_(["mailbox", "onedrive"]))
        ).all()
    state: State = {}
    for row in rows:
        key = (row.kind, row.owner)
        state.setdefault(key, set())
        if row.kind == "mailbox":
            if row.entry_kind == "item" and containers.get(row.parent_id) in ("mailFolder", "conversations"):
                state[key].add(row.external_id)
        elif row.entry_kind in ("document", "folder") and "collectionKind" not in (row.extras or {}):
            state[key].add(row.external_id)
    return state


def differences(expected: State, actual: State) -> list[str]:
    """Human-readable differences (empty when equal)."""
    out: list[str] = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key, set()), actual.get(key, set())
        if want != got:
            missing, extra = sorted(want - got), sorted(got - want)
            out.append(f"{key}: missing {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}")
    return out
