"""The archive connector (Graph beta mailbox import/export): MockTransport bodies shaped as in
Microsoft's beta pages, then the same calls against the emulator over HTTPS."""

from __future__ import annotations

import base64

import httpx
import pytest

from m365vault.m365 import GraphClient, Scope
from m365vault.m365.archive import (
    ItemImporter,
    beta_url,
    exchange_mailboxes,
    export_items,
    folders_query,
    item_properties,
    items_query,
)
from m365vault.m365.delta import read_delta
from m365vault.m365.errors import GraphNotFound, GraphPermanent
from tests.m365.conftest import Emulator
from tests.m365.fakes import Router, collection, graph_error, json_of, make_client

BETA = "https://graph.microsoft.com/beta"
ARCHIVE = "MBX:f10964a6@a7809c93"
SCOPE = Scope.mailbox("u1")


def _none() -> tuple[str, ...]:
    return ()


def test_beta_url_stays_on_the_graph_host() -> None:
    client, _, _ = make_client(Router())
    assert beta_url(client, "/users/a/settings/exchange") == f"{BETA}/users/a/settings/exchange"


async def test_exchange_mailboxes_reads_the_archive_id() -> None:
    router = Router()
    router.on(
        "GET",
        r"/beta/users/u1/settings/exchange$",
        httpx.Response(
            200, json={"primaryMailboxId": "MBX:e0643f21@a7809c93", "inPlaceArchiveMailboxId": ARCHIVE}
        ),
    )
    router.on(
        "GET", r"/beta/users/u2/settings/exchange$", httpx.Response(200, json={"primaryMailboxId": "MBX:1@2"})
    )
    router.on("GET", r"/beta/users/u3/settings/exchange$", graph_error(404, "ErrorItemNotFound"))
    client, _, _ = make_client(router)
    async with client:
        found = await exchange_mailboxes(client, "u1")
        assert (found.primary, found.archive) == ("MBX:e0643f21@a7809c93", ARCHIVE)
        assert (await exchange_mailboxes(client, "u2")).archive is None
        with pytest.raises(GraphNotFound):
            await exchange_mailboxes(client, "u3")


async def test_item_delta_follows_a_308_on_graph_and_reads_properties() -> None:
    router = Router()
    aux = f"{BETA}/admin/exchange/mailboxes/MBX:767fh867@a7809c93/folders/F1/items/delta"
    router.on(
        "GET",
        r"mailboxes/MBX:f10964a6@a7809c93/folders/F1/items/delta",
        httpx.Response(308, headers={"Location": aux + "?%24select=id"}),
    )
    item = {
        "@odata.type": "#microsoft.graph.mailboxItem",
        "id": "I1",
        "changeKey": "CQAAABYAAACQ2fKdhq8oSKEDSVrdi3lRAAFR+6ZT",
        "type": "IPM.Note",
        "size": 75329,
        "createdDateTime": "2021-10-19T06:30:30Z",
        "lastModifiedDateTime": "2021-10-19T07:17:06Z",
        "singleValueExtendedProperties": [{"id": "String 0x0037", "value": "Budget"}],
    }
    router.on(
        "GET", r"MBX:767fh867@a7809c93/folders/F1/items/delta", collection([item], delta_link=aux + "?t=1")
    )
    client, tokens, _ = make_client(router)
    async with client:
        pages = [
            p
            async for p in read_delta(
                client, items_query(client, ARCHIVE, "F1", SCOPE), token=None, known_ids=_none
            )
        ]
    assert [c.id for c in pages[-1].changes] == ["I1"] and pages[-1].token == aux + "?t=1"
    assert item_properties(pages[-1].changes[0].item) == {"subject": "Budget"}
    first = router.requests[0]
    assert "%24expand=singleValueExtendedProperties" in str(first.url) and first.headers["Prefer"]
    assert router.requests[1].headers["Authorization"] == f"Bearer {tokens.current}"


async def test_a_redirect_to_another_host_is_not_followed() -> None:
    router = Router()
    router.on(
        "GET",
        r"folders/delta",
        httpx.Response(
            308, headers={"Location": "https://evil.example/beta/admin/exchange/mailboxes/x/folders/delta"}
        ),
    )
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphPermanent, match=r"evil\.example"):
            async for _ in read_delta(
                client, folders_query(client, ARCHIVE, SCOPE), token=None, known_ids=_none
            ):
                pass
    assert all(r.url.host == "graph.microsoft.com" for r in router.requests)


async def test_export_sends_twenty_ids_per_request_and_keeps_item_errors() -> None:
    router = Router()

    def answer(request: httpx.Request) -> httpx.Response:
        ids = json_of(request)["itemIds"]
        value = [
            {"itemId": i, "error": {"code": "ErrorItemNotFound", "message": "gone"}}
            if i == "i7"
            else {"itemId": i, "changeKey": f"ck-{i}", "data": base64.b64encode(f"fts:{i}".encode()).decode()}
            for i in ids
        ]
        return httpx.Response(200, json={"value": value})

    router.on("POST", r"/beta/admin/exchange/mailboxes/MBX:f10964a6@a7809c93/exportItems$", answer)
    client, _, _ = make_client(router)
    wanted = [f"i{n}" for n in range(45)]
    async with client:
        got = await export_items(client, ARCHIVE, wanted, SCOPE)
    assert [len(json_of(r)["itemIds"]) for r in router.requests] == [20, 20, 5]
    assert [g.item_id for g in got] == wanted
    assert got[0].data == b"fts:i0" and got[0].change_key == "ck-i0"
    assert got[7].data is None and "ErrorItemNotFound" in (got[7].error or "")


async def test_import_posts_without_the_token_and_renews_an_expired_session() -> None:
    router = Router()
    sessions = iter(
        [
            "https://outlook.office365.com/api/gbeta/Mailboxes('x')/importItem?authtoken=one",
            "https://outlook.office365.com/api/gbeta/Mailboxes('x')/importItem?authtoken=two",
        ]
    )

    def session(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            201, json={"importUrl": next(sessions), "expirationDateTime": "2999-10-17T19:00:48.1052906Z"}
        )

    router.on("POST", r"/createImportSession$", session)
    router.on("POST", r"authtoken=one", graph_error(401, "InvalidAuthenticationToken"))
    router.on("POST", r"authtoken=two", httpx.Response(200, json={"itemId": "NEW1", "changeKey": "ck"}))
    client, _, _ = make_client(router)
    async with client:
        importer = ItemImporter(client, ARCHIVE, SCOPE)
        assert await importer.create("F1", b"opaque") == "NEW1"
    posts = [r for r in router.requests if "importItem" in str(r.url)]
    assert len(posts) == 2 and all("authorization" not in r.headers for r in posts)
    assert json_of(posts[-1]) == {
        "FolderId": "F1",
        "Mode": "create",
        "Data": base64.b64encode(b"opaque").decode(),
    }


@pytest.mark.slow
async def test_against_the_emulator_backup_and_import(emu: Emulator) -> None:
    async with GraphClient.for_tenant(emu.settings()) as client:
        users = (await client.get_json("/users", scope=Scope.directory()))["value"]
        archives = []
        for user in users:
            try:
                found = await exchange_mailboxes(client, user["id"])
            except GraphNotFound:
                continue
            if found.archive:
                archives.append((user["id"], found.archive))
        assert archives
        user_id, archive = archives[0]
        scope = Scope.mailbox(user_id)
        folders = [
            c.item
            async for p in read_delta(
                client, folders_query(client, archive, scope), token=None, known_ids=_none
            )
            for c in p.changes
        ]
        assert {f["displayName"] for f in folders} >= {"Inbox", "2024"}
        held: dict[str, dict] = {}
        tokens: dict[str, str | None] = {}
        for folder in folders:  # the expanded folder answers 308: read through the auxiliary
            async for page in read_delta(
                client, items_query(client, archive, folder["id"], scope), token=None, known_ids=_none
            ):
                held.update({c.id: c.item for c in page.changes})
                tokens[folder["id"]] = page.token
        missing = [i for i in held.values() if not item_properties(i).get("subject")]
        assert held and not missing, missing[:2]
        exported = await export_items(client, archive, list(held)[:25], scope)
        assert all(e.data for e in exported) and len(exported) == min(25, len(held))
        inbox = next(f for f in folders if f["displayName"] == "Inbox")
        new_id = await ItemImporter(client, archive, scope).create(inbox["id"], exported[0].data or b"")
        changes = [
            c
            async for p in read_delta(
                client,
                items_query(client, archive, inbox["id"], scope),
                token=tokens[inbox["id"]],
                known_ids=_none,
            )
            for c in p.changes
        ]
        assert [c.id for c in changes] == [new_id]
        again = await export_items(client, archive, [new_id], scope)
        assert again[0].data == exported[0].data
