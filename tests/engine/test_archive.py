"""Archive mailboxes in the engine: planning from exchange settings, a refused beta API as a
warning (not a failure), and the archive change source over MockTransport bodies shaped as
Microsoft's beta pages document them."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import httpx
import pytest

from m365vault.engine.adapters.archive_mailbox import ArchiveMailbox
from m365vault.engine.adapters.connector import GraphPlanningDirectory
from m365vault.engine.budget import ContentBudget
from m365vault.engine.planner import JobScope, PartialOrganizationItem, plan_backup
from m365vault.engine.ports import (
    BackupObject,
    ContentGone,
    ItemUnreadable,
    ObjectKind,
    ServiceUnavailable,
    SessionStatus,
    TenantUser,
)
from m365vault.engine.queue import OutcomeStatus
from m365vault.engine.testing import FakeTenant, mailbox
from tests.engine.harness import World, backup
from tests.m365.fakes import Router, collection, graph_error, json_of, make_client

ARCHIVE = "MBX:f10964a6@a7809c93"
ADELE = BackupObject(ObjectKind.ARCHIVE_MAILBOX, "u1", "adele@contoso.com")


async def test_a_refused_archive_ends_its_task_warning_and_the_rest_is_backed_up() -> None:
    world = World(FakeTenant())
    world.tenant.add_user(TenantUser("u1", "adele@contoso.com", True, True, False))
    world.tenant.put(mailbox("u1", "adele@contoso.com"), "inbox", "m1", b"From: a@b\r\n\r\nhi")
    world.tenant.unavailable[ADELE.key] = "access denied: MailboxFolder.Read.All is not granted"
    result, reporter = await backup(world)
    assert result.status is SessionStatus.WARNING
    statuses = {r.obj.kind: r.status for r in result.objects}
    assert statuses == {
        ObjectKind.MAILBOX: OutcomeStatus.SUCCESS,
        ObjectKind.ARCHIVE_MAILBOX: OutcomeStatus.WARNING,
    }
    assert any(
        t.startswith("[Warning] Processing archive mailbox adele") and "MailboxFolder.Read.All" in t
        for t in reporter.titles
    )


async def test_a_failed_archive_lookup_is_one_plan_warning() -> None:
    tenant = FakeTenant()
    for n in range(3):
        tenant.add_user(
            TenantUser(f"u{n}", f"user{n}@contoso.com", True, False, False, archive_problem="denied")
        )
    result = await plan_backup(JobScope(False, [PartialOrganizationItem(archive_mailbox=True)]), tenant)
    assert result.objects == () and list(result.warnings) == [
        "Archive mailboxes could not be looked up: denied"
    ]


def _directory_router(settings: httpx.Response, users: int = 3) -> Router:
    """Users u0..; every exchange settings sub-request of a beta $batch answers `settings`."""
    router = Router()
    listed = [{"id": f"u{n}", "userPrincipalName": f"user{n}@contoso.com"} for n in range(users)]
    router.on("GET", r"/v1.0/users\?", collection(listed))
    router.on("GET", r"/mailboxSettings", httpx.Response(200, json={"timeZone": "UTC"}))
    router.on("GET", r"/v1.0/users/u\d+/drive$", graph_error(404, "itemNotFound"))
    body = settings.json()

    def batch(request: httpx.Request) -> httpx.Response:
        subs = json_of(request)["requests"]
        assert all(s["url"].startswith("/users/") and s["url"].endswith("/settings/exchange") for s in subs)
        answers = [{"id": s["id"], "status": settings.status_code, "body": body} for s in subs]
        return httpx.Response(200, json={"responses": answers})

    router.on("POST", r"/beta/\$batch$", batch)
    return router


async def test_planning_reads_archives_from_exchange_settings_in_beta_batches() -> None:
    found = {"primaryMailboxId": "MBX:1@2", "inPlaceArchiveMailboxId": ARCHIVE}
    router = _directory_router(httpx.Response(200, json=found), users=25)
    client, _, _ = make_client(router)
    async with client:
        # No OneDrive probes: 25 SharePoint requests would wait on the fake timer's RU budget.
        users = [u async for u in GraphPlanningDirectory(client, sharepoint=False).users()]
    assert len(users) == 25 and all(u.has_archive_mailbox and u.archive_problem is None for u in users)
    assert {u.archive_id for u in users} == {ARCHIVE}
    assert [len(json_of(r)["requests"]) for r in router.sent("POST", r"/beta/\$batch")] == [20, 5]
    assert not router.sent("GET", r"/settings/exchange")
    # The archive's id travels to its task, which then does not read the settings again.
    tenant = FakeTenant()
    for user in users:
        tenant.add_user(user)
    plan = await plan_backup(JobScope(False, [PartialOrganizationItem(archive_mailbox=True)]), tenant)
    assert [(obj.kind, obj.archive_id) for obj in plan.objects] == [
        (ObjectKind.ARCHIVE_MAILBOX, ARCHIVE)
    ] * 25


async def test_planning_stops_probing_archives_after_a_refusal() -> None:
    refused = graph_error(403, "ErrorAccessDenied", "Access is denied.")
    router = _directory_router(refused)
    router.on("GET", r"/beta/users/u9/settings/exchange$", refused)
    router.on(
        "GET", r"/v1.0/users/u9(\?|$)", httpx.Response(200, json={"id": "u9", "userPrincipalName": "u9@x"})
    )
    client, _, _ = make_client(router)
    directory = GraphPlanningDirectory(client)
    async with client:
        users = [u async for u in directory.users()]
        assert [u.has_archive_mailbox for u in users] == [False, False, False]
        assert all("Access is denied" in (u.archive_problem or "") for u in users)
        single = await directory.user("u9")  # not probed again once refused
    assert single is not None and single.archive_problem and not single.has_archive_mailbox
    assert len(router.sent("POST", r"/beta/\$batch")) == 1 and not router.sent("GET", r"/settings/exchange")


def _item(n: int) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.mailboxItem",
        "id": f"I{n}",
        "changeKey": f"ck{n}",
        "type": "IPM.Note",
        "size": 1000 + n,
        "createdDateTime": "2021-10-19T06:30:30Z",
        "lastModifiedDateTime": "2021-10-19T07:17:06Z",
        "singleValueExtendedProperties": [
            {"id": "String 0x0037", "value": f"Subject {n}"},
            {"id": "String 0x5D01", "value": "megan@contoso.com"},
        ],
    }


def _archive_router() -> Router:
    router = Router()
    router.on(
        "GET",
        r"/beta/users/u1/settings/exchange$",
        httpx.Response(
            200, json={"primaryMailboxId": "MBX:e0643f21@a7809c93", "inPlaceArchiveMailboxId": ARCHIVE}
        ),
    )
    folders = [
        {"id": "F1", "displayName": "Inbox", "parentFolderId": "ROOT", "type": "IPF.Note"},
        {"id": "F2", "displayName": "2023", "parentFolderId": "F1", "type": "IPF.Note"},
    ]
    router.on(
        "GET", r"/folders/delta", collection(folders, delta_link="https://graph.microsoft.com/beta/x?d=1")
    )

    def export(request: httpx.Request) -> httpx.Response:
        value = [
            {"itemId": i, "error": {"code": "ErrorItemNotFound", "message": "gone"}}
            if i == "I2"
            else {"itemId": i, "error": {"code": "ErrorCorruptData", "message": "bad item"}}
            if i == "I3"
            else {"itemId": i, "changeKey": "ck", "data": base64.b64encode(f"FTS {i}".encode()).decode()}
            for i in json_of(request)["itemIds"]
        ]
        return httpx.Response(200, json={"value": value})

    router.on("POST", r"/exportItems$", export)
    return router


async def test_the_archive_source_lists_folders_and_exports_each_page() -> None:
    router = _archive_router()
    link = "https://graph.microsoft.com/beta/admin/exchange/mailboxes/x/folders/F1/items/delta?d=2"
    router.on("GET", r"/folders/F1/items/delta", collection([_item(1), _item(2), _item(3)], delta_link=link))
    client, _, _ = make_client(router)
    budget = ContentBudget()
    async with client:
        source = ArchiveMailbox(client, budget)
        refs = await source.collections(ADELE)
        assert [(r.id, r.name, r.parent_id) for r in refs] == [("F1", "Inbox", None), ("F2", "2023", "F1")]
        pages = source.changes(ADELE, refs[0], None)
        page = await anext(pages)
        assert page.final and page.token == link
        first, second, third = page.changes
        assert first.version_key == "ck1" and first.metadata["subject"] == "Subject 1"
        assert first.metadata["sender"] == "megan@contoso.com" and first.metadata["item_class"] == "IPM.Note"
        # The export was read under a budget hold of the delta page's sizes plus 8/3 of its one
        # request's (the answer and its text); the decoded streams stay held until the next page.
        assert all(change.read_ahead for change in page.changes)
        assert budget.peak == 3006 + 3006 * 8 // 3 and budget.used == len(b"FTS I1")
        assert b"".join([piece async for piece in source.content(refs[0], first)]) == b"FTS I1"
        with pytest.raises(ContentGone):
            [piece async for piece in source.content(refs[0], second)]
        with pytest.raises(ItemUnreadable, match="ErrorCorruptData"):
            [piece async for piece in source.content(refs[0], third)]
        assert [p async for p in pages] == []
        assert budget.used == 0
        with pytest.raises(ContentGone):  # let go with the page
            [piece async for piece in source.content(refs[0], first)]
    assert len(router.sent("POST", r"/exportItems")) == 1


async def test_a_page_of_big_archive_items_is_exported_a_few_at_a_time() -> None:
    router = _archive_router()
    items = [{**_item(n), "size": 400_000} for n in (1, 4, 5, 6, 7)]
    link = "https://graph.microsoft.com/beta/admin/exchange/mailboxes/x/folders/F1/items/delta?d=2"
    router.on("GET", r"/folders/F1/items/delta", collection(items, delta_link=link))
    client, _, _ = make_client(router)
    budget = ContentBudget()
    async with client:
        source = ArchiveMailbox(client, budget)
        refs = await source.collections(ADELE)
        pages = source.changes(ADELE, refs[0], None)
        page = await anext(pages)
        contents = [b"".join([p async for p in source.content(refs[0], c)]) for c in page.changes]
        assert [p async for p in pages] == []
    assert contents == [f"FTS I{n}".encode() for n in (1, 4, 5, 6, 7)]
    # At most EXPORT_REQUEST (1 MiB) of items a request: the answer being read stays small.
    sent = [json_of(r)["itemIds"] for r in router.sent("POST", r"/exportItems")]
    assert sent == [["I1", "I4"], ["I5", "I6"], ["I7"]]
    assert budget.peak == 5 * 400_000 + 800_000 * 8 // 3 and budget.used == 0


async def test_the_archive_id_planning_found_is_not_looked_up_again() -> None:
    router = _archive_router()
    client, _, _ = make_client(router)
    async with client:
        refs = await ArchiveMailbox(client).collections(replace(ADELE, archive_id=ARCHIVE))
    assert [r.id for r in refs] == ["F1", "F2"]
    assert not router.sent("GET", r"/settings/exchange")
    (listing,) = router.sent("GET", r"/folders/delta")
    assert f"/mailboxes/{ARCHIVE}/folders/delta" in str(listing.url).replace("%3A", ":").replace("%40", "@")


async def test_the_archive_source_drops_expand_when_graph_rejects_it() -> None:
    router = _archive_router()
    link = "https://graph.microsoft.com/beta/admin/exchange/mailboxes/x/folders/F1/items/delta?d=2"

    def items(request: httpx.Request) -> httpx.Response:
        if "expand" in str(request.url):
            return graph_error(400, "BadRequest", "$expand is not supported")
        plain = {k: v for k, v in _item(3).items() if k != "singleValueExtendedProperties"}
        return collection([plain], delta_link=link)

    router.on("GET", r"/folders/F1/items/delta", items)
    client, _, _ = make_client(router)
    async with client:
        source = ArchiveMailbox(client)
        refs = await source.collections(ADELE)
        pages = [p async for p in source.changes(ADELE, refs[0], None)]
    assert pages[-1].changes[0].metadata["item_class"] == "IPM.Note"
    assert pages[-1].changes[0].metadata["subject"] is None


async def test_the_archive_source_turns_refusals_into_service_unavailable() -> None:
    router = Router()
    router.on("GET", r"/settings/exchange$", graph_error(403, "ErrorAccessDenied", "Access is denied."))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(ServiceUnavailable, match=r"User\.Read\.All"):
            await ArchiveMailbox(client).collections(ADELE)
    router = _archive_router()
    router.on("POST", r"/exportItems$", graph_error(403, "ErrorAccessDenied"))
    router.on(
        "GET",
        r"/folders/F1/items/delta",
        collection([_item(1)], delta_link="https://graph.microsoft.com/beta/y"),
    )
    client, _, _ = make_client(router)
    async with client:
        source = ArchiveMailbox(client)
        refs = await source.collections(ADELE)
        with pytest.raises(ServiceUnavailable, match="exported"):
            [p async for p in source.changes(ADELE, refs[0], None)]


async def test_an_incremental_reads_the_archive_folders_first_pages_in_one_batch() -> None:
    router = _archive_router()
    base = "https://graph.microsoft.com/beta/admin/exchange/mailboxes/x/folders"
    aux = "https://graph.microsoft.com/beta/admin/exchange/mailboxes/aux/folders/F2/items/delta?d=t2"
    router.on("GET", r"/folders/F1/items/delta\?d=t1", collection([_item(1)], delta_link=f"{base}/F1/d?d=n1"))
    # F2's content lives in an auxiliary archive: its read is redirected, which a batch cannot follow.
    router.on("GET", r"/folders/F2/items/delta\?d=t2", httpx.Response(308, headers={"Location": aux}))
    router.on(
        "GET",
        r"/mailboxes/aux/folders/F2/items/delta",
        collection([_item(2)], delta_link=f"{base}/F2/d?d=n2"),
    )
    client, _, _ = make_client(router)
    async with client:
        source = ArchiveMailbox(client, ContentBudget())
        f1, f2 = await source.collections(ADELE)
        tokens = {"F1": f"{base}/F1/items/delta?d=t1", "F2": f"{base}/F2/items/delta?d=t2"}
        await source.prefetch(ADELE, [(f1, tokens["F1"]), (f2, tokens["F2"])])
        assert len(router.sent("POST", r"/beta/\$batch$")) == 1
        pages = {ref.id: [p async for p in source.changes(ADELE, ref, tokens[ref.id])] for ref in (f1, f2)}
    assert [c.item_id for c in pages["F1"][0].changes] == ["I1"] and pages["F1"][
        0
    ].token == f"{base}/F1/d?d=n1"
    assert [c.item_id for c in pages["F2"][0].changes] == ["I2"] and pages["F2"][
        0
    ].token == f"{base}/F2/d?d=n2"
    # F1 came from the batch; only F2 was read again on its own, following the redirect.
    assert router.sent("GET", r"/folders/F1/items/delta") == []
    assert len(router.sent("GET", r"/mailboxes/x/folders/F2/items/delta\?d=t2")) == 1
    assert len(router.sent("GET", r"/mailboxes/aux/")) == 1
