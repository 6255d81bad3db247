"""A real backup through the real parts: organization checks and listings, a full backup, an
incremental one after tenant activity, the catalog against the tenant at both points in time,
start/stop rules and a stop in the middle of a run."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import Engine, Row, func, select

from m365vault.catalog import CatalogReader
from m365vault.db.catalog_tables import entries_table, restore_points_table, versions_table
from tests.e2e.conftest import Product
from tests.e2e.tenant_state import catalog_state, differences, tenant_state
from tests.support.product import (
    CLIENT_SECRET,
    M365VAULT,
    last_session,
    organization_body,
    wait_for,
    wait_new_session,
    wait_session_end,
)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_wrong_credentials_answer_400_with_the_reason_and_store_nothing(product: Product) -> None:
    before = product.api.get("/v3/Organizations").json()
    body = organization_body(product.emulator, secret="not-the-secret")
    body["exchangeOnlineSettings"]["officeOrganizationName"] = "other.onmicrosoft.com"
    body["sharePointOnlineSettings"]["officeOrganizationName"] = "other.onmicrosoft.com"
    r = product.api.post("/v3/Organizations", json=body)
    assert r.status_code == 400
    assert "AADSTS" in r.json()["message"] or "refused" in r.json()["message"]
    assert product.api.get("/v3/Organizations").json() == before
    # A PUT with a wrong secret is refused too and leaves the stored credentials working.
    put = organization_body(product.emulator, secret="still-wrong")
    r = product.api.put(f"/v3/Organizations/{product.org['id']}", json=put)
    assert r.status_code == 400
    assert product.api.get(f"/v3/Organizations/{product.org['id']}/Users?limit=1").status_code == 200


def test_tenant_listings_are_served_from_the_tenant_and_paged(product: Product) -> None:
    org = product.org["id"]
    with product.emulator.graph() as graph:
        users = graph.get("/users", params={"$top": "999"}).json()["value"]
    page1 = product.api.get(f"/v3/Organizations/{org}/Users", params={"offset": 0, "limit": 3}).json()
    page2 = product.api.get(f"/v3/Organizations/{org}/Users", params={"offset": 3, "limit": 3}).json()
    listed = [u["id"] for u in page1["results"] + page2["results"]]
    assert listed == [u["id"] for u in users[:6]]
    assert {u["name"] for u in page1["results"]} <= {u["userPrincipalName"] for u in users}
    sites = product.api.get(f"/v3/Organizations/{org}/Sites").json()["results"]
    assert sites and all(s["url"].startswith("https://") for s in sites)
    groups = product.api.get(f"/v3/Organizations/{org}/Groups").json()["results"]
    assert groups
    with product.emulator.graph() as graph:
        has_drive = [graph.get(f"/users/{u['id']}/drive").status_code == 200 for u in users]
    for user, expected in zip(users, has_drive, strict=True):
        body = product.api.get(f"/v3/Organizations/{org}/Users/{user['id']}/OneDrives").json()
        drives = body["results"] if isinstance(body, dict) else body
        assert len(drives) == int(expected), (user["id"], body)


def test_full_then_incremental_backup_matches_the_tenant_at_each_point(product: Product) -> None:
    api, job = product.api, product.job
    assert product.action("start").status_code == 200
    full = wait_session_end(api, job["id"])
    assert full["status"] == "Success", full
    with product.emulator.graph() as graph:
        state_full = tenant_state(graph)
    assert sum(len(ids) for ids in state_full.values()) > 100
    at_full = _time(full["endTime"])
    assert not differences(state_full, catalog_state(product.db, at_full))

    job_row = api.get(f"/v3/Jobs/{job['id']}").json()
    assert job_row["lastStatus"] == "Success" and job_row["lastRun"]
    org = api.get(f"/v3/Organizations/{product.org['id']}").json()
    assert org["isBackedup"] is True and org["firstBackuptime"] and org["lastBackuptime"]
    used = api.get(f"/v3/Organizations/{product.org['id']}/UsedRepositories").json()
    assert any(
        r["id"] == job["repositoryId"]
        for r in (used.get("results", used) if isinstance(used, dict) else used)
    )

    with product.emulator.admin() as admin:
        r = admin.post(
            "/activity",
            json={
                "seed": 7,
                "newMessages": 15,
                "deletedMessages": 5,
                "movedMessages": 5,
                "updatedMessages": 5,
                "newFiles": 4,
                "editedFiles": 3,
                "deletedFiles": 2,
                "newGroupPosts": 2,
                "newGroupThreads": 1,
            },
        )
        assert r.status_code == 200, r.text
        replied = {(p["group"], p["thread"]) for p in r.json()["newGroupPosts"]}
    with product.emulator.graph() as graph:  # a deleted thread must be marked gone by the next run
        group = graph.get("/groups").json()["value"][-1]["id"]
        threads = graph.get(f"/groups/{group}/threads").json()["value"]
        doomed = next(t["id"] for t in threads if (group, t["id"]) not in replied)
        assert graph.delete(f"/groups/{group}/threads/{doomed}").status_code == 204
    time.sleep(0.01)
    assert product.action("start").status_code == 200
    wait_new_session(api, job["id"], full["id"])
    incremental = wait_session_end(api, job["id"])
    assert incremental["status"] == "Success", incremental
    moved = incremental["statistics"]["processedObjects"]
    assert 0 < moved < full["statistics"]["processedObjects"] / 10, (moved, full["statistics"])
    with product.emulator.graph() as graph:
        state_incremental = tenant_state(graph)
    assert state_incremental != state_full
    assert not differences(state_incremental, catalog_state(product.db, _time(incremental["endTime"])))
    # History stays: the catalog still shows the first point in time as the tenant was then.
    assert not differences(state_full, catalog_state(product.db, at_full))
    assert doomed in state_full[("mailbox", group)] and doomed not in state_incremental[("mailbox", group)]
    # A group thread that got a reply has two versions: the one before it and the one with it.
    for group_id, thread_id in replied:
        assert thread_id in state_full[("mailbox", group_id)]
        versions = thread_versions(product.db, thread_id)
        assert len(versions) >= 2 and versions[0].gone_at is not None, versions
        assert versions[0].first_seen <= at_full < versions[-1].first_seen
        assert versions[-1].gone_at is None and versions[-1].item_class == "IPM.Post"
        assert versions[-1].sender and versions[-1].subject and versions[-1].content_ref
    explore_group_thread(product, *sorted(replied)[0], at_full, _time(incremental["endTime"]))

    def points() -> int:
        with product.db.connect() as conn:
            query = select(func.count(func.distinct(restore_points_table.c.run_time)))
            return int(conn.execute(query).scalar_one())

    # Restore points are written just after the session's final status (same run, next statement).
    assert wait_for(lambda: points() == 2, 10, "the second restore point")
    # What explore sees: nothing before the first backup, the latest state after the last one.
    reader = CatalogReader(product.db)
    org_id = product.org["id"]
    assert reader.restore_point_at(org_id, _time(full["creationTime"]) - timedelta(seconds=1)) is None
    latest = reader.restore_point_at(org_id, _time(incremental["endTime"]) + timedelta(days=365))
    assert latest is not None and latest >= _time(incremental["endTime"])
    assert not differences(state_incremental, catalog_state(product.db, latest))

    # Files were downloaded through pre-authenticated URLs: neither they nor the app secret are logged.
    log = product.server.process.log_path.read_text(errors="replace")
    assert "/_download/" not in log and CLIENT_SECRET not in log


def explore_group_thread(
    product: Product, group_id: str, thread_id: str, before: datetime, after: datetime
) -> None:
    """Vex shows the group mailbox, its Conversations folder and the thread as it was at each point;
    the thread saves as a .eml whose digest holds one message per post."""
    api, job = product.api, product.job
    seen = []
    for at in (before, after):
        r = api.post(
            f"/v3/Jobs/{job['id']}/Action", json={"explore": {"type": "vex", "datetime": at.isoformat()}}
        )
        assert r.status_code == 201, r.text
        base = f"/v3/RestoreSessions/{r.json()['id']}/Organization/Mailboxes"
        mailboxes = api.get(base, params={"limit": 1000}).json()["results"]
        assert group_id in {m["id"] for m in mailboxes}
        folders = api.get(f"{base}/{group_id}/Folders").json()["results"]
        assert [f["name"] for f in folders] == ["Conversations"]
        listed = api.get(f"{base}/{group_id}/Items", params={"folderId": folders[0]["id"]}).json()
        assert thread_id in {i["id"] for i in listed["results"]}
        item = api.get(f"{base}/{group_id}/Items/{thread_id}").json()
        assert item["itemClass"] == "IPM.Post" and item["from"] and item["subject"]
        saved = api.post(f"{base}/{group_id}/Items/{thread_id}/Action", json={"saveToEml": None})
        assert saved.status_code == 200, saved.text
        message = message_from_bytes(saved.content, policy=policy.default)
        assert message["Subject"] == item["subject"] and message.get_content_type() == "multipart/digest"
        seen.append((item["received"], len(list(message.iter_parts()))))
        refused = api.post(
            f"{base}/{group_id}/Items/{thread_id}/Action", json={"restoretoOriginallocation": None}
        )
        assert refused.status_code == 400 and "saveToEml" in refused.json()["message"], refused.text
    assert seen[0][0] < seen[1][0] and seen[0][1] < seen[1][1], seen  # the reply is only in the later one


def thread_versions(db: Engine, thread_id: str) -> list[Row]:
    v, e = versions_table, entries_table
    with db.connect() as conn:
        query = (
            select(v.c.first_seen, v.c.gone_at, v.c.item_class, v.c.sender, v.c.subject, v.c.content_ref)
            .join(e, e.c.id == v.c.entry_id)
            .where(e.c.external_id == thread_id)
            .order_by(v.c.first_seen)
        )
        return list(conn.execute(query).all())


def test_start_while_running_is_refused_and_stop_ends_the_run_within_seconds(product: Product) -> None:
    api, job = product.api, product.job
    assert product.action("stop").status_code == 400  # idle
    product.emulator_config(latencyMs=400)  # a run now takes well over a minute
    try:
        previous = last_session(api, job["id"])
        assert product.action("start").status_code == 200
        running = wait_new_session(api, job["id"], previous["id"] if previous else None)
        assert running["status"] == "Running"
        assert api.get(f"/v3/Jobs/{job['id']}").json()["lastStatus"] == "Running"
        r = product.action("start")
        assert r.status_code == 400 and "running" in r.json()["message"]
        time.sleep(2)
        asked = time.monotonic()
        assert product.action("stop").status_code == 200
        ended = wait_session_end(api, job["id"], timeout=15)
        assert time.monotonic() - asked <= 10
        assert ended["status"] == "Stopped" and ended["endTime"]
        assert api.get(f"/v3/Jobs/{job['id']}").json()["lastStatus"] == "Stopped"
        titles = [
            i["title"] for i in api.get(f"/v3/JobSessions/{ended['id']}/LogItems?limit=200").json()["results"]
        ]
        assert any("stopped by user" in t for t in titles), titles
        assert product.action("stop").status_code == 400
    finally:
        product.emulator_config(latencyMs=0)
    # The run after a stop works (a repository writer the stop broke is opened again).
    assert product.action("start").status_code == 200
    wait_new_session(api, job["id"], ended["id"])
    assert wait_session_end(api, job["id"])["status"] == "Success"


def test_new_repositories_are_real_and_an_existing_one_needs_its_password(
    product: Product, tmp_path: Path
) -> None:
    body = {
        "name": "second",
        "path": str(tmp_path / "second"),
        "retentionType": "ItemLevel",
        "retentionPeriodType": "Daily",
        "dailyRetentionPeriod": 30,
        "retentionFrequencyType": "Daily",
        "dailyTime": "04:00:00",
        "dailyType": "Everyday",
        "password": "second-repository-password",
    }
    r = product.api.post("/v3/BackupRepositories", json=body)
    assert r.status_code == 201, r.text
    check = subprocess.run(
        [
            M365VAULT,
            "repo",
            "stats",
            "--json",
            "--data-dir",
            str(product.server.data_dir),
            "--repository",
            "second",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and '"packs": 0' in check.stdout, check.stdout + check.stderr
    # A directory that already holds a repository: adopted with its password, refused without.
    existing = tmp_path / "existing"
    secret = tmp_path / "pw"
    secret.write_text("the-existing-password\n")
    made = subprocess.run(
        [M365VAULT, "repo", "init", str(existing), "--password-file", str(secret)],
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr

    def repositories() -> list[tuple[str, str, str]]:
        # Without capacity and free space: the disk's free space moves between two reads.
        return [(r["id"], r["name"], r["path"]) for r in product.api.get("/v3/BackupRepositories").json()]

    before = repositories()
    wrong = {**body, "name": "third", "path": str(existing), "password": "not-the-password"}
    r = product.api.post("/v3/BackupRepositories", json=wrong)
    assert r.status_code == 400 and "password" in r.json()["message"], r.text
    assert repositories() == before
    right = {**wrong, "password": "the-existing-password"}
    assert product.api.post("/v3/BackupRepositories", json=right).status_code == 201
