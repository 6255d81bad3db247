"""The planning directory reads the team sites of a page of groups through one `$batch`."""

from __future__ import annotations

import httpx

from m365vault.engine.adapters.connector import GraphPlanningDirectory
from m365vault.engine.ports import TenantGroup
from tests.m365.fakes import Router, collection, graph_error, json_of, make_client


def _group(gid: str, unified: bool) -> dict[str, object]:
    kinds = ["Unified"] if unified else []
    return {"id": gid, "mail": f"{gid}@contoso.com", "mailEnabled": unified, "groupTypes": kinds}


async def test_group_sites_are_read_in_one_batch() -> None:
    router = Router()
    listed = [_group("g1", True), _group("g2", True), _group("s3", False)]
    router.on("GET", r"/v1.0/groups\?", collection(listed))
    router.on("GET", r"/groups/g1/sites/root$", httpx.Response(200, json={"id": "contoso,1,2"}))
    router.on("GET", r"/groups/g2/sites/root$", graph_error(404, "itemNotFound"))
    client, _, _ = make_client(router)
    async with client:
        groups = [g async for g in GraphPlanningDirectory(client).groups()]
    assert groups == [
        TenantGroup("g1", "g1@contoso.com", True, "contoso,1,2"),
        TenantGroup("g2", "g2@contoso.com", True, None),
        TenantGroup("s3", "s3@contoso.com", False, None),  # a security group: no site asked for
    ]
    (batch,) = router.sent("POST", r"/\$batch$")
    assert [sub["url"] for sub in json_of(batch)["requests"]] == [
        "/groups/g1/sites/root",
        "/groups/g2/sites/root",
    ]
    assert not router.sent("GET", r"/sites/root")
