"""Enumeration with paging and the server facade (verify_tenant, listings)."""

from __future__ import annotations

import httpx
import pytest

from m365vault.m365 import tenant
from m365vault.m365.enumeration import (
    discover_users,
    list_lists,
    list_mail_folders,
    list_site_drives,
    list_sites,
    list_users,
)
from m365vault.m365.errors import GraphAuthError, GraphError, GraphForbidden
from m365vault.m365.settings import ClientSecret, TenantSettings
from m365vault.m365.throttle import LimitPolicy, Scope
from tests.m365.fakes import GRAPH, Router, collection, graph_error, json_of, make_client
from tests.m365.test_auth import TokenService

HR_SITE = "contoso.sharepoint.com,bf6fb551-d508-4946-a439-b2a6154fc1d9,65a04b8b-1f44-442b-a1fc-9e5852fb946c"
USERS_NEXT = f"{GRAPH}/users?$select=id&$top=2&$skiptoken=X%274453707402000100000017%27"


def user(uid: str, upn: str) -> dict[str, object]:
    return {
        "id": uid,
        "userPrincipalName": upn,
        "displayName": upn.split("@")[0],
        "mail": upn,
        "userType": "Member",
    }


async def test_users_follow_next_links_and_resend_headers() -> None:
    router = Router()
    router.on(
        "GET",
        r"/users\?%24select",
        collection([user("u1", "a@contoso.com"), user("u2", "b@contoso.com")], next_link=USERS_NEXT),
    )
    router.on("GET", r"skiptoken=X", collection([user("u3", "c@contoso.com")]))
    client, _, _ = make_client(router)
    async with client:
        pages = [p async for p in list_users(client, filter="userType ne 'Guest'")]
    assert [[u["id"] for u in p.items] for p in pages] == [["u1", "u2"], ["u3"]]
    assert pages[0].next_link == USERS_NEXT and pages[1].next_link is None
    first, second = router.requests
    assert first.url.params["$count"] == "true" and first.url.params["$filter"] == "userType ne 'Guest'"
    assert first.url.params["$top"] == "999"
    assert all(r.headers["ConsistencyLevel"] == "eventual" for r in (first, second))
    assert "skiptoken=X%274453707402000100000017%27" in str(second.url)


async def test_discover_users_probes_mailbox_and_onedrive() -> None:
    router = Router()
    router.on(
        "GET",
        r"/users\?",
        collection(
            [
                user("u1", "a@contoso.com"),
                user("g1", "guest_x#EXT#@contoso.com"),
                user("u3", "c@contoso.com"),
                user("p4", "blocked@contoso.com"),
            ]
        ),
    )
    router.on(
        "GET",
        r"/users/p4/mailboxSettings$",
        graph_error(403, "ErrorAccessDenied", "Access to OData is disabled."),
    )
    router.on("GET", r"/users/p4/drive\?", graph_error(404, "itemNotFound"))
    router.on(
        "GET",
        r"/users/u1/mailboxSettings$",
        httpx.Response(200, json={"timeZone": "UTC", "userPurpose": "user"}),
    )
    router.on("GET", r"/users/u3/mailboxSettings$", httpx.Response(200, json={"userPurpose": "shared"}))
    router.on(
        "GET",
        r"/users/g1/mailboxSettings$",
        graph_error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ),
    )
    router.on("GET", r"/users/u1/drive\?", httpx.Response(200, json={"id": "b!d1", "driveType": "business"}))
    router.on("GET", r"/users/(g1|u3)/drive\?", graph_error(404, "itemNotFound", "user's mysite not found"))
    client, _, _ = make_client(router)
    async with client:
        found = {d.id: d async for page in discover_users(client) for d in page}
    assert found["u1"].has_mailbox and found["u1"].onedrive == {"id": "b!d1", "driveType": "business"}
    assert found["g1"].has_mailbox is False and found["g1"].onedrive is None
    assert found["u3"].mailbox_purpose == "shared" and found["u3"].onedrive is None
    assert found["p4"].has_mailbox is None and "Access to OData is disabled" in found["p4"].probe_errors[0]


def _drive_of(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": f"b!{request.url.path.split('/')[-2]}", "name": "OneDrive"})


async def test_discover_users_batches_probes_each_charged_to_its_own_lane() -> None:
    router = Router()
    router.on("GET", r"/users\?", collection([user(f"u{n}", f"user{n}@contoso.com") for n in range(25)]))
    ok = httpx.Response(200, json={"userPurpose": "user"})
    router.on("GET", r"/users/u\d+/mailboxSettings$", ok)
    throttled = graph_error(429, "ApplicationThrottled", "over its limit", {"Retry-After": "3"})
    router.on("GET", r"/users/u3/mailboxSettings$", throttled, ok)
    router.on("GET", r"/users/u\d+/drive\?", _drive_of)
    # A directory budget far too small for 50 probes, and SharePoint's at 10 RU a minute.
    limits = LimitPolicy(
        directory_requests_per_second=0.01, directory_burst=2, sharepoint_resource_units_per_minute=10
    )
    client, _, timer = make_client(router, limits=limits)
    started = timer.now
    async with client:
        found = [d async for page in discover_users(client, concurrency=1) for d in page]
        paused = {scope: client.lane(scope).pauses for scope in (Scope.mailbox("u3"), Scope.directory())}
    assert [d.id for d in found] == [f"u{n}" for n in range(25)]
    assert all(d.has_mailbox and d.onedrive == {"id": f"b!{d.id}", "name": "OneDrive"} for d in found)
    # 50 probes in three round trips; u3's throttled one again on its own after the first.
    assert [len(json_of(r)["requests"]) for r in router.sent("POST", r"/\$batch$")] == [20, 1, 20, 10]
    assert not router.sent("GET", r"/mailboxSettings|/drive")
    assert len(router.sent_in_batches("GET", r"/drive\?")) == 25
    # The throttled probe paused its own mailbox's lane, not the directory's.
    assert paused == {Scope.mailbox("u3"): 1, Scope.directory(): 0}
    # Each drive probe spent a SharePoint resource unit: 10 + 10 + 5 RU take two more minutes. The
    # round trips cost the directory nothing (at 0.01 a second, 50 probes would take an hour).
    assert 120 <= timer.now - started < 130


async def test_sites_drives_lists_and_folders() -> None:
    router = Router()
    site_next = f"{GRAPH}/sites/oneDrive.getAllSites?$skiptoken=UGFnZWQ9VFJVRQ"
    router.on(
        "GET",
        r"/sites/getAllSites",
        collection(
            [
                {
                    "id": HR_SITE,
                    "name": "hr",
                    "webUrl": "https://contoso.sharepoint.com/sites/hr",
                },
                {
                    "id": "contoso-my.sharepoint.com,1,2",
                    "webUrl": "https://contoso-my.sharepoint.com/personal/a_contoso_com",
                },
            ],
            next_link=site_next,
        ),
    )
    router.on(
        "GET",
        r"oneDrive\.getAllSites",
        collection([{"id": "s3", "webUrl": "https://contoso.sharepoint.com/sites/it"}]),
    )
    router.on("GET", r"/sites/s3/drives", collection([{"id": "b!lib", "driveType": "documentLibrary"}]))
    router.on(
        "GET",
        r"/sites/s3/lists",
        collection(
            [
                {"id": "l1", "list": {"template": "genericList"}},
                {"id": "l2", "system": {}, "list": {"template": "genericList"}},
            ]
        ),
    )
    router.on(
        "GET",
        r"/mailFolders\?",
        collection([{"id": "inbox-id", "displayName": "Inbox", "childFolderCount": 1}]),
    )
    router.on("GET", r"/mailFolders/inbox-id/childFolders", collection([{"id": "c1", "displayName": "Sub"}]))
    client, _, _ = make_client(router)
    async with client:
        sites = [s["id"] async for p in list_sites(client) for s in p.items]
        drives = [d["id"] async for d in list_site_drives(client, "s3")]
        lists = [li["id"] async for li in list_lists(client, "s3")]
        top = [f["id"] async for f in list_mail_folders(client, "u1")]
        sub = [f["id"] async for f in list_mail_folders(client, "u1", "inbox-id")]
    assert sites == [
        "contoso.sharepoint.com,bf6fb551-d508-4946-a439-b2a6154fc1d9,65a04b8b-1f44-442b-a1fc-9e5852fb946c",
        "s3",
    ]
    assert drives == ["b!lib"] and lists == ["l1"] and top == ["inbox-id"] and sub == ["c1"]
    assert router.sent("GET", r"/mailFolders\?")[0].url.params["includeHiddenFolders"] == "true"


def emulator_like_settings() -> TenantSettings:
    return TenantSettings(
        tenant="contoso.onmicrosoft.com", client_id="app-1", credential=ClientSecret("s3cret")
    )


async def test_verify_tenant_reads_the_initial_domain() -> None:
    router = Router()
    router.on(
        "GET",
        r"/organization\?",
        collection(
            [
                {
                    "id": "84841066-274d-4ec0-a5c1-276be684bdd3",
                    "displayName": "Contoso",
                    "verifiedDomains": [
                        {"name": "contoso.com", "isDefault": True, "isInitial": False},
                        {"name": "contoso.onmicrosoft.com", "isDefault": False, "isInitial": True},
                    ],
                }
            ]
        ),
    )
    info = await tenant.verify_tenant(
        emulator_like_settings(),
        transport=router.transport,
        token_transport=httpx.MockTransport(TokenService()),
    )
    assert info.name == "contoso.onmicrosoft.com" and info.display_name == "Contoso"
    assert info.tenant_id == "84841066-274d-4ec0-a5c1-276be684bdd3"
    assert router.requests[0].headers["Authorization"] == "Bearer at-1"


async def test_verify_tenant_falls_back_to_a_user_read_without_organization_permission() -> None:
    router = Router()
    router.on(
        "GET",
        r"/organization",
        graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    )
    router.on("GET", r"/users\?", collection([{"id": "u1"}]))
    info = await tenant.verify_tenant(
        emulator_like_settings(),
        transport=router.transport,
        token_transport=httpx.MockTransport(TokenService()),
    )
    assert info.name == "contoso.onmicrosoft.com"


async def test_verify_tenant_reports_why_it_failed() -> None:
    router = Router()
    router.on(
        "GET",
        r".*",
        graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    )
    with pytest.raises(GraphForbidden, match="Insufficient privileges"):
        await tenant.verify_tenant(
            emulator_like_settings(),
            transport=router.transport,
            token_transport=httpx.MockTransport(TokenService()),
        )
    bad = TokenService(
        error={
            "error": "unauthorized_client",
            "error_description": "AADSTS700016: Application with identifier 'app-1' was not found",
        }
    )
    with pytest.raises(GraphAuthError, match="AADSTS700016") as info:
        await tenant.verify_tenant(
            emulator_like_settings(), transport=router.transport, token_transport=httpx.MockTransport(bad)
        )
    assert isinstance(info.value, GraphError) and info.value.reason


async def test_facade_listings() -> None:
    router = Router()
    router.on("GET", r"/users\?", collection([{"id": "u1"}]))
    router.on("GET", r"/groups\?", collection([{"id": "g1", "groupTypes": ["Unified"]}]))
    router.on(
        "GET",
        r"/sites/getAllSites",
        collection([{"id": "s1", "webUrl": "https://contoso.sharepoint.com/sites/a"}]),
    )
    router.on(
        "GET",
        r"/users/u1/drive\?",
        httpx.Response(
            200,
            json={"id": "b!1", "name": "OneDrive", "webUrl": "https://contoso-my.sharepoint.com/personal/u1"},
        ),
    )
    router.on("GET", r"/users/u2/drive\?", graph_error(404, "itemNotFound"))
    client, _, _ = make_client(router)
    async with client:
        assert [u["id"] async for p in tenant.list_users(client) for u in p.items] == ["u1"]
        assert [g["id"] async for p in tenant.list_groups(client) for g in p.items] == ["g1"]
        assert [s["id"] async for p in tenant.list_sites(client) for s in p.items] == ["s1"]
        assert [d["id"] for d in await tenant.list_onedrives(client, "u1")] == ["b!1"]
        assert await tenant.list_onedrives(client, "u2") == []


async def test_verify_tenant_when_nothing_answers() -> None:
    from tests.support.net import free_port

    closed = f"https://127.0.0.1:{free_port()}"
    settings = TenantSettings(
        tenant="contoso.onmicrosoft.com",
        client_id="app-1",
        credential=ClientSecret("s3cret"),
        graph_endpoint=closed,
        authority_endpoint=closed,
    )
    with pytest.raises(GraphAuthError, match="cannot reach the token service"):
        await tenant.verify_tenant(settings)
