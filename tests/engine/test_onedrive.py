"""A OneDrive's drive travels from planning to its task: the drive probe planning already made is
not repeated by the task, and a drive gone in between still fails the object with the same reason
a task finding no OneDrive gives. A drive's root id comes from its delta page when the page has it,
and a file's content from the download URL the page gave."""

from __future__ import annotations

import gc
import json

import httpx
import pytest

from m365vault.clock import FakeClock
from m365vault.engine.adapters.connector import GraphPlanningDirectory
from m365vault.engine.adapters.source import DRIVE, GraphChangeSource
from m365vault.engine.planner import JobScope, PartialOrganizationItem, plan_backup
from m365vault.engine.ports import BackupObject, ChangePage, CollectionRef, ObjectKind
from m365vault.engine.testing import MemoryContentStore
from m365vault.m365.errors import GraphNotFound
from tests.m365.fakes import GRAPH, Router, collection, graph_error, make_client

NO_MAILBOX = graph_error(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive.")
NO_DRIVE = graph_error(404, "itemNotFound", "User's mysite not found.")
# u0's OneDrive as planning hands it over: its drive already read.
PLANNED = BackupObject(
    ObjectKind.ONEDRIVE, "u0", "user0@contoso.com", (CollectionRef("b!u0", DRIVE, "OneDrive"),)
)


def _tenant() -> Router:
    """u0 has a OneDrive, u1 none; neither has a mailbox."""
    router = Router()
    listed = [{"id": f"u{n}", "userPrincipalName": f"user{n}@contoso.com"} for n in range(2)]
    router.on("GET", r"/v1.0/users\?", collection(listed))
    router.on("GET", r"/mailboxSettings$", NO_MAILBOX)
    router.on("GET", r"/users/u0/drive\?", httpx.Response(200, json={"id": "b!u0", "name": "OneDrive"}))
    router.on("GET", r"/users/u1/drive\?", NO_DRIVE)
    return router


async def test_the_planned_drive_is_the_tasks_collection_without_asking_again() -> None:
    router = _tenant()
    client, _, _ = make_client(router)
    async with client:
        plan = await plan_backup(
            JobScope(False, [PartialOrganizationItem(onedrive=True)]), GraphPlanningDirectory(client)
        )
        assert [o.key for o in plan.objects] == [(ObjectKind.ONEDRIVE.value, "u0")]
        obj = plan.objects[0]
        assert obj.collections == (CollectionRef("b!u0", DRIVE, "OneDrive"),)
        probes = len(router.sent_in_batches("GET", r"/drive\?"))
        source = GraphChangeSource(client, FakeClock(), MemoryContentStore())
        assert await source.collections(obj) == obj.collections
    assert len(router.sent_in_batches("GET", r"/drive\?")) == probes == 2  # one per user, at planning
    assert not router.sent("GET", r"/drive\?")


async def test_a_drive_gone_after_planning_fails_like_a_missing_onedrive() -> None:
    router = _tenant()
    router.on("GET", r"/drives/b!u0/root/delta", graph_error(404, "itemNotFound", "The drive was not found."))
    client, _, _ = make_client(router)
    unplanned = BackupObject(ObjectKind.ONEDRIVE, "u1", "user1@contoso.com")
    async with client:
        source = GraphChangeSource(client, FakeClock(), MemoryContentStore())
        (drive,) = await source.collections(PLANNED)
        with pytest.raises(GraphNotFound) as gone:
            _ = [page async for page in source.changes(PLANNED, drive, None)]
        with pytest.raises(GraphNotFound) as never:
            await source.collections(unplanned)  # asked at the task: Graph says there is none
    assert str(gone.value) == "the user user0@contoso.com has no OneDrive"
    assert str(never.value) == "the user user1@contoso.com has no OneDrive"
    assert isinstance(gone.value.__cause__, GraphNotFound)  # Graph's own 404 stays attached


async def _only_page(source: GraphChangeSource) -> tuple[CollectionRef, ChangePage]:
    """The planned drive and the one page its delta round gives."""
    (drive,) = await source.collections(PLANNED)
    (read,) = [p async for p in source.changes(PLANNED, drive, None)]
    return drive, read


ROOT = {"id": "R", "name": "root", "root": {}, "folder": {"childCount": 1}}
FILE = {"id": "F1", "name": "a.txt", "file": {}, "eTag": "e1", "parentReference": {"id": "R"}}


@pytest.mark.parametrize(("page", "root_reads"), [([ROOT, FILE], 0), ([FILE], 1)])
async def test_a_drives_root_is_read_only_when_its_delta_page_lacks_it(
    page: list[dict[str, object]], root_reads: int
) -> None:
    router = Router()
    link = f"{GRAPH}/drives/b!u0/root/delta?token=next"
    router.on("GET", r"/drives/b!u0/root/delta", collection(page, delta_link=link))
    router.on("GET", r"/drives/b!u0/root$", httpx.Response(200, json=ROOT))
    client, _, _ = make_client(router)
    async with client:
        _, read = await _only_page(GraphChangeSource(client, FakeClock(), MemoryContentStore()))
    (change,) = read.changes
    assert change.item_id == "F1" and change.metadata["parent"] == "b!u0"  # the root is the library
    assert len(router.sent("GET", r"/drives/b!u0/root$")) == root_reads


async def test_a_files_content_comes_from_the_download_url_of_its_delta_page() -> None:
    router = Router()
    url = "https://contoso.sharepoint.com/_layouts/15/download.aspx?UniqueId=F1&tempauth=t"
    page = [ROOT, {**FILE, "@microsoft.graph.downloadUrl": url}]
    router.on(
        "GET",
        r"/drives/b!u0/root/delta",
        collection(page, delta_link=f"{GRAPH}/drives/b!u0/root/delta?token=n"),
    )
    router.on("GET", r"download\.aspx", httpx.Response(200, content=b"hello"))
    client, _, _ = make_client(router)
    async with client:
        source = GraphChangeSource(client, FakeClock(), MemoryContentStore())
        drive, read = await _only_page(source)
        (change,) = read.changes
        assert b"".join([piece async for piece in source.content(PLANNED, drive, change)]) == b"hello"
    (delta_read,) = router.sent("GET", r"/root/delta")
    assert "@microsoft.graph.downloadUrl" in delta_read.url.params["$select"].split(",")
    assert not router.sent("GET", r"/content$")


def _raw_items_named(name: str) -> list[dict[str, object]]:
    """Parsed Graph items still alive anywhere in the process with this name."""
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, dict) and o.get("name") == name and "eTag" in o]


async def test_a_pages_raw_items_are_let_go_once_converted() -> None:
    # 64 busy tasks each held their page's parsed Graph items while its content was saved.
    router = Router()
    marker = "marker-9f1c2e.txt"
    link = f"{GRAPH}/drives/b!u0/root/delta?token=next"
    # Only the bytes stay with the route: every dict with the marker is one the client parsed.
    body = json.dumps({"value": [ROOT, {**FILE, "name": marker}], "@odata.deltaLink": link}).encode()
    router.on("GET", r"/drives/b!u0/root/delta", httpx.Response(200, content=body))
    client, _, _ = make_client(router)
    async with client:
        source = GraphChangeSource(client, FakeClock(), MemoryContentStore())
        (drive,) = await source.collections(PLANNED)
        pages = source.changes(PLANNED, drive, None)
        page = await anext(pages)  # the engine now saves the page's content
        assert [change.metadata["name"] for change in page.changes] == [marker]
        assert _raw_items_named(marker) == []
        await pages.aclose()  # type: ignore[attr-defined]
