"""Users, groups and mailbox probes (graph-protocol.md §2.1, §2.2)."""

from __future__ import annotations

import httpx


def test_users_default_properties_select_and_paging(graph: httpx.Client) -> None:
    page = graph.get("/users").json()
    assert page["@odata.context"].endswith("/$metadata#users")
    first = page["value"][0]
    assert set(first) == {
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    }
    sel = graph.get(
        "/users", params={"$select": "id,userPrincipalName,accountEnabled,userType", "$top": "3"}
    ).json()
    assert set(sel["value"][0]) == {"id", "userPrincipalName", "accountEnabled", "userType"}
    assert len(sel["value"]) == 3 and "$skiptoken=" in sel["@odata.nextLink"]
    assert "%24select=" in sel["@odata.nextLink"] or "$select=" in sel["@odata.nextLink"]
    seen = [u["id"] for u in sel["value"]]
    nxt = sel["@odata.nextLink"]
    while nxt:
        body = graph.get(nxt).json()
        assert set(body["value"][0]) == {"id", "userPrincipalName", "accountEnabled", "userType"}
        seen += [u["id"] for u in body["value"]]
        nxt = body.get("@odata.nextLink")
    assert len(seen) == len(set(seen)) == len(page["value"])
    assert graph.get("/users", params={"$top": "0"}).status_code == 400


def test_user_by_id_and_upn_and_missing(graph: httpx.Client) -> None:
    u = graph.get("/users", params={"$select": "id,userPrincipalName"}).json()["value"][0]
    assert graph.get(f"/users/{u['userPrincipalName']}").json()["id"] == u["id"]
    assert graph.get(f"/users/{u['id']}", params={"$select": "id,mail"}).json().keys() >= {"id", "mail"}
    r = graph.get("/users/nobody@contoso.onmicrosoft.com")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"


def test_filters_and_advanced_queries(graph: httpx.Client) -> None:
    members = graph.get(
        "/users", params={"$filter": "userType eq 'Member'", "$select": "id,userType"}
    ).json()["value"]
    assert members and all(u["userType"] == "Member" for u in members)
    adv = graph.get("/users", params={"$filter": "userType ne 'Guest'", "$count": "true"})
    assert adv.status_code == 400 and adv.json()["error"]["code"] == "Request_UnsupportedQuery"
    ok = graph.get(
        "/users",
        params={"$filter": "userType ne 'Guest'", "$count": "true", "$select": "id,userType"},
        headers={"ConsistencyLevel": "eventual"},
    ).json()
    assert ok["@odata.count"] == len(ok["value"]) == len(members)
    enabled = graph.get(
        "/users", params={"$filter": "accountEnabled eq true", "$select": "accountEnabled"}
    ).json()
    assert all(u["accountEnabled"] for u in enabled["value"])
    with_mail = graph.get(
        "/users",
        params={"$filter": "endsWith(mail,'@contoso.onmicrosoft.com')", "$count": "true", "$select": "mail"},
        headers={"ConsistencyLevel": "eventual"},
    ).json()
    assert with_mail["value"] and all(
        u["mail"].endswith("@contoso.onmicrosoft.com") for u in with_mail["value"]
    )
    bad = graph.get("/users", params={"$filter": "startswith(("})
    assert bad.status_code == 400


def test_mailbox_settings_probe(graph: httpx.Client) -> None:
    users = graph.get("/users", params={"$select": "id,mail,userType"}).json()["value"]
    with_box = [u for u in users if u["mail"] and u["userType"] == "Member"]
    without = [u for u in users if not u["mail"] or u["userType"] == "Guest"]
    assert graph.get(f"/users/{with_box[0]['id']}/mailboxSettings").json()["userPurpose"] in (
        "user",
        "shared",
    )
    purposes = {graph.get(f"/users/{u['id']}/mailboxSettings").json()["userPurpose"] for u in with_box}
    assert purposes == {"user", "shared"}
    for u in without:
        r = graph.get(f"/users/{u['id']}/mailboxSettings")
        assert r.status_code == 404 and r.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"


def test_groups_and_their_drive_and_site(graph: httpx.Client) -> None:
    groups = graph.get(
        "/groups",
        params={
            "$filter": "groupTypes/any(c:c eq 'Unified')",
            "$select": "id,displayName,mail,groupTypes,visibility",
        },
    ).json()["value"]
    assert len(groups) >= 2 and all(g["groupTypes"] == ["Unified"] for g in groups)
    g = groups[0]
    assert graph.get(f"/groups/{g['id']}").json()["displayName"] == g["displayName"]
    assert graph.get(f"/groups/{g['id']}/drive").json()["driveType"] == "documentLibrary"
    assert graph.get(f"/groups/{g['id']}/sites/root").json()["displayName"] == g["displayName"]
    assert graph.get("/groups/00000000-0000-0000-0000-000000000000").status_code == 404


def test_unknown_route_and_method(graph: httpx.Client) -> None:
    assert graph.get("/nothingHere").status_code == 400
    r = graph.put("/users")
    assert r.status_code == 405 and r.json()["error"]["code"] == "Request_BadRequest"


def test_links_follow_forwarded_host(graph: httpx.Client) -> None:
    page = graph.get(
        "/users",
        params={"$top": "2"},
        headers={"X-Forwarded-Host": "graph.example.test", "X-Forwarded-Proto": "https"},
    ).json()
    assert page["@odata.nextLink"].startswith("https://graph.example.test/v1.0/users?")


def test_users_and_groups_delta(graph: httpx.Client) -> None:
    first = graph.get("/users/delta", params={"$select": "id,displayName", "$top": "3"}).json()
    assert len(first["value"]) == 3 and "$skiptoken=" in first["@odata.nextLink"]
    users = list(first["value"])
    r = first
    while "@odata.nextLink" in r:
        r = graph.get(r["@odata.nextLink"]).json()
        users += r["value"]
    assert {u["id"] for u in users} == {u["id"] for u in graph.get("/users").json()["value"]}
    assert set(users[-1]) == {"id", "displayName"}
    assert graph.get(r["@odata.deltaLink"]).json()["value"] == []
    latest = graph.get("/users/delta", params={"$deltatoken": "latest"}).json()
    assert latest["value"] == [] and "$deltatoken=" in latest["@odata.deltaLink"]
    groups = graph.get("/groups/delta").json()
    assert groups["value"] and "@odata.deltaLink" in groups
