"""Delta readers fed the documented Graph bodies: rounds, @removed, deleted facets, resyncs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from m365vault.m365.delta import DeltaPage, drive_delta, mail_folders_delta, messages_delta
from m365vault.m365.errors import DeltaResyncRequired
from tests.m365.fakes import GRAPH, Router, collection, graph_error, make_client

FOLDER = "AQMkADNkAAAgEMAAAA"
MESSAGES = f"{GRAPH}/users/u1/mailFolders/{FOLDER}/messages/delta"
MSG_NEXT = f"https://graph.microsoft.com/v1.0/me/mailfolders('{FOLDER}')/messages/delta?$skiptoken=GwcBoTmP1"
MSG_DELTA = (
    f"https://graph.microsoft.com/v1.0/me/mailfolders('{FOLDER}')/messages/delta?$deltatoken=GwcBoTmP2"
)
MSG_DELTA_2 = (
    f"https://graph.microsoft.com/v1.0/me/mailfolders('{FOLDER}')/messages/delta?$deltatoken=GwcBoTmP3"
)


def message(mid: str, subject: str = "hello") -> dict[str, object]:
    return {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": 'W/"CQAAABYAAA"',
        "id": mid,
        "subject": subject,
        "changeKey": "CQAAABYAAA",
        "parentFolderId": FOLDER,
        "isRead": False,
    }


def removed(mid: str) -> dict[str, object]:
    return {"@odata.type": "#microsoft.graph.message", "id": mid, "@removed": {"reason": "deleted"}}


async def collect(pages: AsyncIterator[DeltaPage]) -> list[DeltaPage]:
    return [page async for page in pages]


async def test_message_delta_two_rounds_with_removed_items() -> None:
    router = Router()
    router.on(
        "GET",
        r"/messages/delta$|/messages/delta\?%24select",
        collection([message("m1"), message("m2")], next_link=MSG_NEXT),
    )
    router.on("GET", r"skiptoken=GwcBoTmP1", collection([message("m3")], delta_link=MSG_DELTA))
    router.on(
        "GET",
        r"deltatoken=GwcBoTmP2",
        collection([message("m2", "edited"), removed("m1")], delta_link=MSG_DELTA_2),
    )
    client, _, _ = make_client(router)
    async with client:
        first = await collect(messages_delta(client, "u1", FOLDER, token=None, known_ids=lambda: []))
        second = await collect(
            messages_delta(client, "u1", FOLDER, token=first[-1].token, known_ids=lambda: ["m1", "m2", "m3"])
        )

    assert [c.id for p in first for c in p.changes] == ["m1", "m2", "m3"]
    assert [p.token for p in first] == [MSG_NEXT, MSG_DELTA]
    assert [p.complete for p in first] == [False, True]
    assert not any(p.resync for p in first + second)
    changes = second[0].changes
    assert [(c.id, c.removed, c.reason) for c in changes] == [("m2", False, None), ("m1", True, "deleted")]
    assert changes[0].item["subject"] == "edited"
    assert second[0].token == MSG_DELTA_2 and second[0].complete

    initial = router.requests[0]
    assert initial.url.params["$select"].startswith("id,")
    assert (
        'IdType="ImmutableId"' in initial.headers["Prefer"]
        and "odata.maxpagesize=100" in initial.headers["Prefer"]
    )
    # Next links are followed verbatim; the Prefer header is sent again on every page.
    assert "skiptoken=GwcBoTmP1" in str(router.requests[1].url)
    assert all("Prefer" in r.headers for r in router.requests)
    assert "$select" not in router.requests[1].url.params


async def test_expired_token_becomes_a_resync_with_synthesized_removals() -> None:
    router = Router()
    expired = graph_error(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found; generation=149;[highest=157][157][155][156].",
    )
    router.on("GET", r"deltatoken=old", expired)
    # The full round: m2 still exists, m4 is new, m1 and m3 vanished while we were out of sync.
    router.on(
        "GET", r"/messages/delta\?%24select", collection([message("m2"), message("m4")], next_link=MSG_NEXT)
    )
    router.on("GET", r"skiptoken=GwcBoTmP1", collection([message("m5"), removed("m5")], delta_link=MSG_DELTA))
    client, _, _ = make_client(router)

    async def known() -> AsyncIterator[str]:
        for mid in ["m1", "m2", "m3", "m5"]:
            yield mid

    async with client:
        pages = await collect(
            messages_delta(client, "u1", FOLDER, token=f"{MESSAGES}?$deltatoken=old", known_ids=known)
        )
    assert all(p.resync for p in pages)
    assert [p.token for p in pages[:-1]] == [None] * (len(pages) - 1)  # nothing to save mid-resync
    assert pages[-1].token == MSG_DELTA and pages[-1].complete
    changes = [(c.id, c.removed, c.reason) for p in pages for c in p.changes]
    assert changes == [
        ("m2", False, None),
        ("m4", False, None),
        ("m5", False, None),
        ("m5", True, "deleted"),
        ("m1", True, "resync"),
        ("m3", True, "resync"),
    ]


async def test_resync_when_a_next_link_expires_mid_round() -> None:
    router = Router()
    router.on(
        "GET",
        r"/messages/delta\?%24select",
        collection([message("m1")], next_link=MSG_NEXT),
        collection([message("m1"), message("m2")], delta_link=MSG_DELTA),
    )
    router.on("GET", r"skiptoken=GwcBoTmP1", graph_error(410, "syncStateNotFound"))
    client, _, _ = make_client(router)
    async with client:
        pages = await collect(
            messages_delta(client, "u1", FOLDER, token=None, known_ids=lambda: ["m0", "m1"])
        )
    assert [p.resync for p in pages] == [False, True, True]
    assert pages[0].token == MSG_NEXT  # a normal mid-round token the caller may have saved
    ids = [(c.id, c.removed) for p in pages for c in p.changes]
    assert ids == [("m1", False), ("m1", False), ("m2", False), ("m0", True)]
    assert pages[-1].token == MSG_DELTA


DRIVE = "b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7"
DRIVE_DELTA = f"{GRAPH}/drives/{DRIVE}/root/delta"


def drive_item(iid: str, name: str, parent: str | None = "root-id", **extra: object) -> dict[str, object]:
    item: dict[str, object] = {"id": iid, "name": name, "eTag": f'"{{{iid}}},1"', **extra}
    if parent:
        item["parentReference"] = {"driveId": DRIVE, "driveType": "business", "id": parent}
    return item


async def test_drive_delta_deleted_facet_and_link_forms() -> None:
    router = Router()
    first_next = f"{GRAPH}/drives/{DRIVE}/root/delta(token='aTE09NjM2')"
    first_delta = f"{GRAPH}/drives/{DRIVE}/root/delta?token=MzslMjM0"
    router.on(
        "GET",
        r"/root/delta$",
        collection(
            [drive_item("root-id", "root", None, root={}, folder={"childCount": 2})], next_link=first_next
        ),
    )
    router.on(
        "GET",
        r"aTE09NjM2",
        collection(
            [
                drive_item(
                    "f1",
                    "a.txt",
                    file={
                        "mimeType": "text/plain",
                        "hashes": {"quickXorHash": "aCgDG9jwBhDc4Q1yawMZAAAAAAA="},
                    },
                    size=11,
                ),
                drive_item("d1", "Docs", folder={"childCount": 0}),
            ],
            delta_link=first_delta,
        ),
    )
    router.on(
        "GET",
        r"token=MzslMjM0",
        collection(
            [
                {
                    "id": "f1",
                    "deleted": {"state": "deleted"},
                    "parentReference": {"driveId": DRIVE, "id": "root-id"},
                },
                drive_item("d1", "Docs2", folder={"childCount": 0}),
            ],
            delta_link=f"{DRIVE_DELTA}?token=next",
        ),
    )
    client, _, _ = make_client(router)
    async with client:
        first = await collect(drive_delta(client, DRIVE, token=None, known_ids=lambda: []))
        second = await collect(
            drive_delta(client, DRIVE, token=first[-1].token, known_ids=lambda: ["root-id", "f1", "d1"])
        )
    assert [c.id for p in first for c in p.changes] == ["root-id", "f1", "d1"]
    assert first[-1].token == first_delta
    assert [(c.id, c.removed, c.reason) for c in second[0].changes] == [
        ("f1", True, "deleted"),
        ("d1", False, None),
    ]


async def test_drive_resync_follows_the_location_header() -> None:
    router = Router()
    fresh = f"{GRAPH}/drives/{DRIVE}/root/delta?token=fresh-start"
    router.on(
        "GET",
        r"token=stale",
        graph_error(
            410,
            "resyncRequired",
            "Resync required. Replace any local items with the server's version (including deletes)",
            headers={"Location": fresh},
        ),
    )
    router.on(
        "GET",
        r"token=fresh-start",
        collection(
            [drive_item("root-id", "root", None, root={}), drive_item("f2", "b.txt")],
            delta_link=f"{DRIVE_DELTA}?token=after",
        ),
    )
    client, _, _ = make_client(router)
    async with client:
        pages = await collect(
            drive_delta(
                client, DRIVE, token=f"{DRIVE_DELTA}?token=stale", known_ids=lambda: {"root-id", "f1"}
            )
        )
    assert [(c.id, c.removed) for p in pages for c in p.changes] == [
        ("root-id", False),
        ("f2", False),
        ("f1", True),
    ]
    assert pages[-1].token == f"{DRIVE_DELTA}?token=after" and pages[-1].resync


async def test_endless_resyncs_give_up_with_the_classified_error() -> None:
    router = Router()
    router.on("GET", r"/mailFolders/delta", graph_error(410, "SyncStateNotFound"))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(DeltaResyncRequired):
            await collect(mail_folders_delta(client, "u1", token=None, known_ids=lambda: []))


async def test_page_without_links_is_rejected() -> None:
    router = Router()
    router.on("GET", r"/mailFolders/delta", httpx.Response(200, json={"value": []}))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(Exception, match="neither"):
            await collect(mail_folders_delta(client, "u1", token=None, known_ids=lambda: []))


async def test_synthesized_removals_are_batched() -> None:
    router = Router()
    router.on("GET", r"deltatoken=old", graph_error(410, "SyncStateNotFound"))
    router.on("GET", r"/messages/delta\?%24select", collection([], delta_link=MSG_DELTA))
    client, _, _ = make_client(router)
    known = [f"m{i}" for i in range(1203)]
    async with client:
        pages = await collect(
            messages_delta(client, "u1", FOLDER, token=f"{MESSAGES}?$deltatoken=old", known_ids=lambda: known)
        )
    sizes = [len(p.changes) for p in pages]
    assert sizes == [0, 500, 500, 203]
    assert [p.token for p in pages] == [None, None, None, MSG_DELTA]
    assert sorted(c.id for p in pages for c in p.changes) == sorted(known)
