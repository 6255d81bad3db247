"""Drives and driveItems: delta with its token forms, content via 302 + Range, uploads, versions
(graph-protocol.md §2.4, §3.5, §3.7, §4.3, §4.4, §5.3–5.5)."""

from __future__ import annotations

import httpx
import pytest

from m365vault.emulator.quickxor import quick_xor_hash
from tests.emulator.conftest import Emu, drain


@pytest.fixture(scope="module")
def site_drive(emu: Emu) -> dict:
    """The document library of the first group site (holds a file over 10 MB)."""
    with emu.client() as c:
        group = c.get("/groups").json()["value"][0]
        return c.get(f"/groups/{group['id']}/drive").json()


def test_user_group_and_site_drives(graph: httpx.Client, emu: Emu, mailbox_user: dict) -> None:
    d = graph.get(f"/users/{mailbox_user['id']}/drive").json()
    assert d["driveType"] == "business" and d["id"].startswith("b!")
    assert graph.get(f"/drives/{d['id']}").json()["id"] == d["id"]
    assert [x["id"] for x in graph.get(f"/users/{mailbox_user['id']}/drives").json()["value"]] == [d["id"]]
    users = graph.get("/users", params={"$select": "id,mail"}).json()["value"]
    no_drive = next(u for u in users if not u["mail"])
    r = graph.get(f"/users/{no_drive['id']}/drive")
    assert r.status_code == 404
    group = graph.get("/groups").json()["value"][0]
    site = graph.get(f"/groups/{group['id']}/sites/root").json()
    libraries = graph.get(f"/sites/{site['id']}/drives").json()["value"]
    assert all(x["driveType"] == "documentLibrary" for x in libraries)
    assert graph.get(f"/groups/{group['id']}/drive").json()["id"] == libraries[0]["id"]
    assert graph.get(f"/sites/{site['id']}/drive").json()["id"] == libraries[0]["id"]


def test_initial_delta_has_root_hashes_and_no_paths(graph: httpx.Client, site_drive: dict) -> None:
    items, link, pages = drain(graph, f"/drives/{site_drive['id']}/root/delta", params={"$top": "5"})
    assert pages > 1 and "token=" in link and link.startswith("http://127.0.0.1")
    assert "root" in items[0] and items[0]["folder"]["childCount"] >= 1
    files = [i for i in items if "file" in i]
    assert any(f["size"] > 10_000_000 for f in files), "a realistic mix has files over 10 MB"
    assert all("path" not in i["parentReference"] for i in items if "parentReference" in i)
    assert all("cTag" not in i for i in items)  # ODB/SPO omit cTag in delta
    assert all(f["file"]["hashes"]["quickXorHash"] for f in files)
    small = min(files, key=lambda f: f["size"])
    body = graph.get(f"/drives/{site_drive['id']}/items/{small['id']}/content", follow_redirects=True).content
    assert len(body) == small["size"] and quick_xor_hash(body) == small["file"]["hashes"]["quickXorHash"]


def test_content_redirects_to_download_url_with_ranges(graph: httpx.Client, site_drive: dict) -> None:
    items, _, _ = drain(graph, f"/drives/{site_drive['id']}/root/delta")
    big = max((i for i in items if "file" in i), key=lambda i: i["size"])
    r = graph.get(f"/drives/{site_drive['id']}/items/{big['id']}/content")
    assert r.status_code == 302
    url = r.headers["Location"]
    with httpx.Client() as anon:  # pre-authenticated: no Authorization header
        part = anon.get(url, headers={"Range": "bytes=0-1023"})
        assert part.status_code == 206 and len(part.content) == 1024
        assert part.headers["Content-Range"] == f"bytes 0-1023/{big['size']}"
        tail = anon.get(url, headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and len(tail.content) == 100
        mid = anon.get(url, headers={"Range": f"bytes=1000-{big['size'] + 50}"})
        assert mid.content[:24] == part.content[1000:1024]
        assert anon.get(url, headers={"Range": f"bytes={big['size']}-"}).status_code == 416
        whole = anon.get(url)
        assert whole.status_code == 200 and len(whole.content) == big["size"]
        assert whole.headers["Accept-Ranges"] == "bytes"
        held = anon.get(url, headers={"Range": "bytes=10-", "If-Range": whole.headers["ETag"]})
        assert held.status_code == 206 and held.content == whole.content[10:]
        stale = anon.get(url, headers={"Range": "bytes=10-", "If-Range": '"another-version"'})
        assert stale.status_code == 200 and stale.content == whole.content  # the whole file, not a range
    assert quick_xor_hash(whole.content) == big["file"]["hashes"]["quickXorHash"]
    item = graph.get(f"/drives/{site_drive['id']}/items/{big['id']}").json()
    assert item["@microsoft.graph.downloadUrl"].startswith("http://127.0.0.1")
    assert (
        graph.get(
            f"/drives/{site_drive['id']}/items/{big['id']}/content", headers={"If-None-Match": item["eTag"]}
        ).status_code
        == 304
    )
    assert httpx.get(url[:-4] + "AAAA").status_code == 401


def test_changes_show_once_with_deleted_facet_and_ancestors(
    graph: httpx.Client, emu: Emu, mailbox_user: dict
) -> None:
    drive = graph.get(f"/users/{mailbox_user['id']}/drive").json()
    d = drive["id"]
    items, link, _ = drain(graph, f"/drives/{d}/root/delta")
    folder = graph.post(f"/drives/{d}/root/children", json={"name": "Restore", "folder": {}}).json()
    new = graph.put(f"/drives/{d}/root:/Restore/a.txt:/content", content=b"hello").json()
    victim = next(i for i in items if "file" in i)
    assert graph.delete(f"/drives/{d}/items/{victim['id']}").status_code == 204
    changes, link2, _ = drain(graph, link)
    ids = [c["id"] for c in changes]
    assert sorted(set(ids)) == sorted({folder["id"], new["id"], victim["id"], items[0]["id"]})
    deleted = next(c for c in changes if c["id"] == victim["id"])
    assert deleted["deleted"] == {"state": "deleted"} and "name" not in deleted
    assert ids.index(folder["id"]) < ids.index(new["id"])  # the parent comes before its child
    excluded, _, _ = drain(graph, link, headers={"deltaExcludeParent": "true"})
    assert items[0]["id"] not in [c["id"] for c in excluded]
    assert drain(graph, link2)[0] == []
    # token=latest: nothing now, only later changes.
    latest = graph.get(f"/drives/{d}/root/delta", params={"token": "latest"}).json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    graph.put(f"/drives/{d}/items/{new['id']}/content", content=b"hello again")
    changes, _, _ = drain(graph, latest["@odata.deltaLink"])
    assert new["id"] in [c["id"] for c in changes]
    # The function-call token form is the same as the query form.
    token = link2.split("token=")[1]
    assert graph.get(f"/drives/{d}/root/delta(token='{token}')").status_code == 200


def test_resync_and_tampered_tokens(graph: httpx.Client, emu: Emu, site_drive: dict) -> None:
    d = site_drive["id"]
    _, link, _ = drain(graph, f"/drives/{d}/root/delta")
    bad = graph.get(link[:-2] + ("xx" if not link.endswith("xx") else "yy"))
    assert bad.status_code == 400
    assert emu.admin("POST", "expire", {"scope": "drive"}).status_code == 200
    r = graph.get(link)
    assert r.status_code == 410 and r.json()["error"]["code"] == "resyncRequired"
    assert r.headers["Location"].endswith(f"/drives/{d}/root/delta")
    assert graph.get(r.headers["Location"]).status_code == 200


def test_simple_upload_conflict_behaviours(graph: httpx.Client, mailbox_user: dict) -> None:
    d = graph.get(f"/users/{mailbox_user['id']}/drive").json()["id"]
    r = graph.put(f"/drives/{d}/root:/Docs/report.txt:/content", content=b"v1")
    assert r.status_code == 201 and r.json()["name"] == "report.txt"
    fail = graph.put(
        f"/drives/{d}/root:/Docs/report.txt:/content",
        content=b"x",
        params={"@microsoft.graph.conflictBehavior": "fail"},
    )
    assert fail.status_code == 409 and fail.json()["error"]["code"] == "nameAlreadyExists"
    renamed = graph.put(
        f"/drives/{d}/root:/Docs/report.txt:/content",
        content=b"x",
        params={"@microsoft.graph.conflictBehavior": "rename"},
    )
    assert renamed.status_code == 201 and renamed.json()["name"] == "report 1.txt"
    replaced = graph.put(f"/drives/{d}/root:/Docs/report.txt:/content", content=b"v2")
    assert replaced.status_code == 200 and replaced.json()["id"] == r.json()["id"]
    versions = graph.get(f"/drives/{d}/items/{r.json()['id']}/versions").json()["value"]
    assert [v["id"] for v in versions] == ["2.0", "1.0"]
    by_path = graph.get(f"/drives/{d}/root:/Docs/report.txt").json()
    assert by_path["id"] == r.json()["id"] and by_path["parentReference"]["path"] == f"/drives/{d}/root:/Docs"
    children = graph.get(f"/drives/{d}/root:/Docs:/children").json()["value"]
    assert sorted(c["name"] for c in children) == ["report 1.txt", "report.txt"]


def test_upload_session_rules(graph: httpx.Client, mailbox_user: dict) -> None:
    d = graph.get(f"/users/{mailbox_user['id']}/drive").json()["id"]
    data = bytes((i * 7) % 251 for i in range(327_680 * 3 + 1000))
    s = graph.post(
        f"/drives/{d}/root:/Big/large.bin:/createUploadSession",
        json={
            "item": {
                "@microsoft.graph.conflictBehavior": "replace",
                "name": "large.bin",
                "fileSystemInfo": {"lastModifiedDateTime": "2020-01-02T03:04:05Z"},
            }
        },
    )
    assert s.status_code == 200
    url = s.json()["uploadUrl"]
    total = len(data)
    frag = 327_680 * 2
    with httpx.Client() as anon:
        r = anon.put(url, content=data[:frag], headers={"Content-Range": f"bytes 0-{frag - 1}/{total}"})
        assert r.status_code == 202 and r.json()["nextExpectedRanges"] == [f"{frag}-"]
        again = anon.put(url, content=data[:10], headers={"Content-Range": f"bytes 0-9/{total}"})
        assert again.status_code == 416
        gap = anon.put(
            url,
            content=data[frag + 10 : frag + 20],
            headers={"Content-Range": f"bytes {frag + 10}-{frag + 19}/{total}"},
        )
        assert gap.status_code == 400
        wrong_total = anon.put(
            url,
            content=data[frag : frag + 10],
            headers={"Content-Range": f"bytes {frag}-{frag + 9}/{total + 1}"},
        )
        assert wrong_total.status_code == 400
        assert anon.get(url).json()["nextExpectedRanges"] == [f"{frag}-"]
        authed = anon.put(
            url,
            content=data[frag:],
            headers={"Content-Range": f"bytes {frag}-{total - 1}/{total}", "Authorization": "Bearer x"},
        )
        assert authed.status_code == 401
        done = anon.put(
            url, content=data[frag:], headers={"Content-Range": f"bytes {frag}-{total - 1}/{total}"}
        )
        assert done.status_code == 201, done.text
        item = done.json()
        assert (
            item["size"] == total and item["fileSystemInfo"]["lastModifiedDateTime"] == "2020-01-02T03:04:05Z"
        )
        assert item["file"]["hashes"]["quickXorHash"] == quick_xor_hash(data)
        assert anon.get(url).status_code == 404
        body = graph.get(f"/drives/{d}/items/{item['id']}/content", follow_redirects=True).content
        assert body == data
        # A cancelled session is gone.
        s2 = graph.post(f"/drives/{d}/root:/Big/other.bin:/createUploadSession", json={}).json()
        assert anon.delete(s2["uploadUrl"]).status_code == 204
        assert anon.get(s2["uploadUrl"]).status_code == 404
        # conflictBehavior fail against an existing name.
        r = graph.post(
            f"/drives/{d}/root:/Big/large.bin:/createUploadSession",
            json={"item": {"@microsoft.graph.conflictBehavior": "fail"}},
        )
        assert r.status_code == 409


def test_versions_content_and_restore(graph: httpx.Client, site_drive: dict) -> None:
    d = site_drive["id"]
    items, link, _ = drain(graph, f"/drives/{d}/root/delta")
    versioned = None
    for i in items:
        if "file" in i:
            vs = graph.get(f"/drives/{d}/items/{i['id']}/versions").json()["value"]
            if len(vs) > 1:
                versioned, versions = i, vs
                break
    assert versioned is not None, "some files have several versions"
    assert versions[0]["id"] == f"{len(versions)}.0"  # newest first
    old = versions[-1]
    r = graph.get(f"/drives/{d}/items/{versioned['id']}/versions/{old['id']}/content")
    assert r.status_code == 302
    old_bytes = httpx.get(r.headers["Location"]).content
    assert len(old_bytes) == old["size"]
    assert (
        graph.get(f"/drives/{d}/items/{versioned['id']}/versions/{versions[0]['id']}/content").status_code
        == 400
    )
    rv = graph.post(f"/drives/{d}/items/{versioned['id']}/versions/{old['id']}/restoreVersion")
    assert rv.status_code == 204
    now = graph.get(f"/drives/{d}/items/{versioned['id']}/versions").json()["value"]
    assert len(now) == len(versions) + 1
    current = graph.get(f"/drives/{d}/items/{versioned['id']}/content", follow_redirects=True).content
    assert current == old_bytes
    changes, _, _ = drain(graph, link)
    assert versioned["id"] in [c["id"] for c in changes]


def test_patch_rename_and_move(graph: httpx.Client, mailbox_user: dict) -> None:
    d = graph.get(f"/users/{mailbox_user['id']}/drive").json()["id"]
    f = graph.put(f"/drives/{d}/root:/Move/src.txt:/content", content=b"m").json()
    target = graph.post(
        f"/drives/{d}/root/children",
        json={"name": "Target", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"},
    ).json()
    moved = graph.patch(
        f"/drives/{d}/items/{f['id']}", json={"name": "dst.txt", "parentReference": {"id": target["id"]}}
    )
    assert moved.status_code == 200 and moved.json()["parentReference"]["id"] == target["id"]
    assert graph.get(f"/drives/{d}/items/{target['id']}/children").json()["value"][0]["name"] == "dst.txt"
    bad = graph.patch(f"/drives/{d}/items/{f['id']}", json={"size": 3})
    assert bad.status_code == 400


def test_defer_commit_if_match_and_timestamp_tokens(graph: httpx.Client, mailbox_user: dict) -> None:
    d = graph.get(f"/users/{mailbox_user['id']}/drive").json()["id"]
    s = graph.post(
        f"/drives/{d}/root:/Deferred/x.bin:/createUploadSession", json={"deferCommit": True}
    ).json()
    with httpx.Client() as anon:
        r = anon.put(s["uploadUrl"], content=b"abc", headers={"Content-Range": "bytes 0-2/3"})
        assert r.status_code == 202 and r.json()["nextExpectedRanges"] == []
        assert graph.get(f"/drives/{d}/root:/Deferred/x.bin").status_code == 404  # not committed yet
        done = anon.post(s["uploadUrl"], headers={"Content-Length": "0"})
        assert done.status_code == 201 and done.json()["size"] == 3
    item = done.json()
    stale = graph.post(f"/drives/{d}/items/{item['id']}/createUploadSession", json={},
                       headers={"if-match": '"{00000000-0000-0000-0000-000000000000},1"'})  # fmt: skip
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "resourceModified"
    fresh = graph.post(
        f"/drives/{d}/items/{item['id']}/createUploadSession", json={}, headers={"if-match": item["eTag"]}
    )
    assert fresh.status_code == 200
    # A timestamp token: changes after that instant (ODB/SPO "last resort" form).
    latest = graph.get(f"/drives/{d}/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    graph.put(f"/drives/{d}/items/{item['id']}/content", content=b"abcd")
    since_now = drain(graph, latest)[0]
    assert item["id"] in [c["id"] for c in since_now]
    past = drain(graph, f"/drives/{d}/root/delta", params={"token": "2000-01-01T00:00:00Z"})[0]
    assert item["id"] in [c["id"] for c in past]


def test_children_paging_and_download_url_expiry(graph: httpx.Client, emu: Emu, mailbox_user: dict) -> None:
    d = graph.get(f"/users/{mailbox_user['id']}/drive").json()["id"]
    for n in range(5):
        graph.put(f"/drives/{d}/root:/Paged/p{n}.txt:/content", content=b"p")
    page = graph.get(f"/drives/{d}/root:/Paged:/children", params={"$top": "2"}).json()
    names = [c["name"] for c in page["value"]]
    while "@odata.nextLink" in page:
        page = graph.get(page["@odata.nextLink"]).json()
        names += [c["name"] for c in page["value"]]
    assert sorted(names) == [f"p{n}.txt" for n in range(5)]
    emu.admin("POST", "config", {"downloadUrlLifetimeSeconds": 1})
    try:
        url = graph.get(f"/drives/{d}/root:/Paged/p0.txt:/content").headers["Location"]
        assert httpx.get(url).content == b"p"
        import time

        time.sleep(1.1)
        assert httpx.get(url).status_code == 401
    finally:
        emu.admin("POST", "config", {"downloadUrlLifetimeSeconds": 3600})


def test_top_is_baked_into_delta_next_links(graph: httpx.Client, site_drive: dict) -> None:
    url = f"/drives/{site_drive['id']}/root/delta"
    no_parents = {"deltaExcludeParent": "true"}
    sizes = []
    r = graph.get(url, params={"$top": "3"}, headers=no_parents).json()
    while True:
        sizes.append(len(r["value"]))
        if "@odata.nextLink" not in r:
            break
        # the page size lives in the token, not in a query parameter (the token's text may hold
        # "top" by chance: check the parameters, not the string)
        query = httpx.URL(r["@odata.nextLink"]).params
        assert not any(key.lower().lstrip("$") == "top" for key in query)
        r = graph.get(r["@odata.nextLink"], headers=no_parents).json()
    assert len(sizes) > 2 and all(n == 3 for n in sizes[:-1]) and sizes[-1] <= 3
