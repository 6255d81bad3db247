"""Sites, lists, list items and list item delta (graph-protocol.md §2.3, §2.5, §3.6, §5.5)."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.conftest import drain


@pytest.fixture
def task_list(graph: httpx.Client) -> tuple[str, str]:
    site = graph.get("/groups").json()["value"][1]
    site_id = graph.get(f"/groups/{site['id']}/sites/root").json()["id"]
    lists = graph.get(f"/sites/{site_id}/lists").json()["value"]
    generic = next(lst for lst in lists if lst["list"]["template"] == "genericList")
    return site_id, generic["id"]


def test_all_sites_root_and_by_id(graph: httpx.Client) -> None:
    all_sites = graph.get("/sites/getAllSites", params={"$top": "3"}).json()
    assert "/sites/oneDrive.getAllSites?" in all_sites["@odata.nextLink"]
    sites, nxt = list(all_sites["value"]), all_sites.get("@odata.nextLink")
    while nxt:
        page = graph.get(nxt).json()
        sites += page["value"]
        nxt = page.get("@odata.nextLink")
    assert any(s["isPersonalSite"] for s in sites) and any(not s["isPersonalSite"] for s in sites)
    host, coll, web = sites[1]["id"].split(",")
    assert host.endswith(".sharepoint.com") and len(coll) == 36 and len(web) == 36
    root = graph.get("/sites/root").json()
    assert "root" in root and root["siteCollection"]["hostname"] == "contoso.sharepoint.com"
    assert graph.get(f"/sites/{sites[1]['id']}").json()["id"] == sites[1]["id"]
    roots = graph.get("/sites", params={"$filter": "siteCollection/root ne null"}).json()["value"]
    assert [s["id"] for s in roots] == [root["id"]]
    assert (
        graph.get("/sites/contoso.sharepoint.com,00000000-0000-0000-0000-000000000000,x").status_code == 404
    )


def test_lists_and_items_with_fields(graph: httpx.Client, task_list: tuple[str, str]) -> None:
    site_id, list_id = task_list
    lists = graph.get(f"/sites/{site_id}/lists").json()["value"]
    library = next(lst for lst in lists if lst["list"]["template"] == "documentLibrary")
    assert graph.get(f"/sites/{site_id}/lists/{library['id']}/drive").json()["driveType"] == "documentLibrary"
    items = graph.get(f"/sites/{site_id}/lists/{list_id}/items", params={"$expand": "fields"}).json()["value"]
    assert items and {"Title", "Status"} <= set(items[0]["fields"])
    bare = graph.get(f"/sites/{site_id}/lists/{list_id}/items").json()["value"]
    assert "fields" not in bare[0] and bare[0]["id"] == "1"
    one = graph.get(f"/sites/{site_id}/lists/{list_id}/items/1", params={"$expand": "fields"}).json()
    assert one["fields"]["Title"] == items[0]["fields"]["Title"]
    assert graph.get(f"/sites/{site_id}/lists/{list_id}/items/9999").status_code == 404


def test_list_item_delta_and_writes(graph: httpx.Client, task_list: tuple[str, str]) -> None:
    site_id, list_id = task_list
    url = f"/sites/{site_id}/lists/{list_id}/items/delta"
    items, link, pages = drain(graph, url, params={"$expand": "fields", "$top": "3"})
    assert pages > 1 and all("fields" in i for i in items)
    created = graph.post(
        f"/sites/{site_id}/lists/{list_id}/items", json={"fields": {"Title": "Restored task"}}
    )
    assert created.status_code == 201 and created.json()["fields"]["Title"] == "Restored task"
    assert int(created.json()["id"]) > len(items)
    upd = graph.patch(f"/sites/{site_id}/lists/{list_id}/items/1/fields", json={"Status": "Completed"})
    assert upd.status_code == 200 and upd.json()["Status"] == "Completed"
    assert graph.delete(f"/sites/{site_id}/lists/{list_id}/items/2").status_code == 204
    changes, link2, _ = drain(graph, link)
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {"1", "2", created.json()["id"]}
    assert by_id["2"]["deleted"] == {"state": "deleted"}
    assert by_id["1"]["fields"]["Status"] == "Completed"  # $expand baked into the token
    assert drain(graph, link2)[0] == []
    latest = graph.get(url, params={"token": "latest"}).json()
    assert latest["value"] == [] and "token=" in latest["@odata.deltaLink"]
    bad = graph.post(f"/sites/{site_id}/lists/{list_id}/items", json={"fields": {"bad name": 1}})
    assert bad.status_code == 400


def test_columns_and_item_versions(graph: httpx.Client, task_list: tuple[str, str]) -> None:
    site_id, list_id = task_list
    cols = graph.get(f"/sites/{site_id}/lists/{list_id}/columns").json()["value"]
    assert {c["name"] for c in cols} >= {"Title", "Status"}
    assert next(c for c in cols if c["name"] == "Status")["choice"]["choices"]
    before = graph.get(f"/sites/{site_id}/lists/{list_id}/items/3/versions").json()["value"]
    graph.patch(f"/sites/{site_id}/lists/{list_id}/items/3/fields", json={"Title": "v-next"})
    after = graph.get(f"/sites/{site_id}/lists/{list_id}/items/3/versions").json()["value"]
    assert len(after) == len(before) + 1
    assert after[0]["fields"]["Title"] == "v-next" and after[0]["id"] == f"{len(after)}.0"
    assert after[1]["fields"]["Title"] == before[0]["fields"]["Title"]
