"""The connector against the tenant emulator over real HTTPS (MSAL, uvicorn, TLS with its own CA).

Each test keeps a model of what a backup would hold (applying delta pages in order, saving tokens
as it goes) and compares it with a fresh enumeration of the tenant: no lost, no extra items.
Faults, throttling and token lifetimes are the emulator's knobs; they are reset after each test.
"""

from __future__ import annotations

import asyncio
import email
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from m365vault.m365 import GraphAuthError, GraphClient, GraphConflict, GraphStreamInterrupted, Scope
from m365vault.m365.auth import CachedTokenProvider, MsalTokenSource
from m365vault.m365.content import (
    attachment_content,
    download_file,
    get_message,
    list_attachments,
    list_versions,
    message_mime,
)
from m365vault.m365.delta import DeltaPage, drive_delta, list_items_delta, mail_folders_delta, messages_delta
from m365vault.m365.enumeration import (
    discover_users,
    find_drive_item,
    get_user_drive,
    list_groups,
    list_lists,
    list_site_drives,
    list_sites,
)
from m365vault.m365.hashes import QuickXorHash
from m365vault.m365.paging import items
from m365vault.m365.settings import ClientSecret, tls_verification
from m365vault.m365.tenant import verify_tenant
from m365vault.m365.writers import (
    add_attachment,
    create_drive_folder,
    create_list_item,
    create_mail_folder,
    create_message,
    create_message_from_mime,
    move_message,
    restore_version,
    set_message_read,
    update_list_item,
    upload_file,
)
from tests.m365.conftest import TENANT, Emulator
from tests.m365.fakes import byte_stream, pattern_bytes

pytestmark = pytest.mark.slow


class CountingTransport(httpx.AsyncHTTPTransport):
    """Real HTTP, with a tally of answers by status (to prove a storm really happened)."""

    def __init__(self, verify: Any) -> None:
        super().__init__(verify=verify)
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError:
            self.statuses.append(0)  # a dropped connection
            raise
        self.statuses.append(response.status_code)
        return response


@dataclass
class Collection:
    """What a backup keeps for one delta collection: its token and the live items."""

    token: str | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    resyncs: int = 0

    async def sync(self, reader: Callable[..., AsyncIterator[DeltaPage]]) -> None:
        resynced = False
        async for page in reader(token=self.token, known_ids=lambda: list(self.items)):
            resynced = resynced or page.resync
            for change in page.changes:
                if change.removed:
                    self.items.pop(change.id, None)
                else:
                    self.items[change.id] = change.item
            if page.token:  # "durable" here: the model is updated before the token is kept
                self.token = page.token
        self.resyncs += resynced


@dataclass
class Mailbox:
    user_id: str
    folders: Collection = field(default_factory=Collection)
    messages: dict[str, Collection] = field(default_factory=dict)

    async def sync(self, client: GraphClient, page_size: int = 100) -> None:
        await self.folders.sync(lambda **kw: mail_folders_delta(client, self.user_id, **kw))
        for gone in set(self.messages) - set(self.folders.items):
            del self.messages[gone]

        async def one(folder_id: str) -> None:
            collection = self.messages.setdefault(folder_id, Collection())
            await collection.sync(
                lambda **kw: messages_delta(client, self.user_id, folder_id, page_size=page_size, **kw)
            )

        await asyncio.gather(*(one(fid) for fid in self.folders.items))

    def ids(self) -> dict[str, set[str]]:
        return {fid: set(c.items) for fid, c in self.messages.items()}

    @property
    def resyncs(self) -> int:
        return self.folders.resyncs + sum(c.resyncs for c in self.messages.values())


async def mailbox_truth(client: GraphClient, user_id: str) -> dict[str, set[str]]:
    """Every folder and its message ids, read with plain listings (no delta involved)."""
    folders = Collection()
    await folders.sync(lambda **kw: mail_folders_delta(client, user_id, **kw))
    truth: dict[str, set[str]] = {}
    for fid in folders.items:
        truth[fid] = {
            m["id"]
            async for m in items(
                client,
                f"/users/{user_id}/mailFolders/{fid}/messages",
                scope=Scope.mailbox(user_id),
                params={"$select": "id", "$top": "100"},
                headers={"Prefer": 'IdType="ImmutableId"'},
            )
        }
    return truth


async def drive_truth(client: GraphClient, drive_id: str) -> dict[str, dict[str, Any]]:
    fresh = Collection()
    await fresh.sync(lambda **kw: drive_delta(client, drive_id, **kw))
    return fresh.items


async def mailbox_users(client: GraphClient) -> list[str]:
    return [
        d.id async for page in discover_users(client, probe_onedrive=False) for d in page if d.has_mailbox
    ]


async def all_drive_ids(client: GraphClient) -> list[str]:
    drives: list[str] = []
    async for page in list_sites(client, include_personal=True):
        for site in page.items:
            drives += [d["id"] async for d in list_site_drives(client, site["id"])]
    return sorted(set(drives))


async def first_site(client: GraphClient) -> dict[str, Any]:
    async for page in list_sites(client):
        if page.items:
            return page.items[0]
    raise AssertionError("the tenant has no sites")


async def read_file_checked(
    client: GraphClient, drive_id: str, item: dict[str, Any], attempts: int = 6
) -> bytes:
    """Download a file the way a backup would: retry the item when a stream cannot be resumed,
    and check the bytes against the service's QuickXorHash."""
    for attempt in range(attempts):
        hasher = QuickXorHash()
        data = bytearray()
        try:
            async for chunk in download_file(client, drive_id, item["id"]):
                hasher.update(chunk)
                data += chunk
        except GraphStreamInterrupted:
            if attempt == attempts - 1:
                raise
            continue
        expected = item.get("file", {}).get("hashes", {}).get("quickXorHash")
        assert expected is None or hasher.b64digest() == expected, item["name"]
        assert len(data) == item["size"]
        return bytes(data)
    raise AssertionError("unreachable")


async def read_mime(client: GraphClient, user_id: str, message_id: str, attempts: int = 6) -> bytes:
    for attempt in range(attempts):
        try:
            return b"".join([c async for c in message_mime(client, user_id, message_id)])
        except GraphStreamInterrupted:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def connect(emu: Emulator, **kwargs: Any) -> GraphClient:
    return GraphClient.for_tenant(emu.settings(), **kwargs)


# ---------------------------------------------------------------------------------------------- tests


async def test_verify_tenant_and_discovery(emu: Emulator) -> None:
    tenant = emu.admin("GET", "tenant")
    info = await verify_tenant(emu.settings())
    assert info.name == TENANT and info.tenant_id == tenant["tenantId"]

    async with connect(emu) as client:
        users = [d async for page in discover_users(client) for d in page]
        groups = [g async for page in list_groups(client) for g in page.items]
        drives = await all_drive_ids(client)
        lists = [li async for li in list_lists(client, (await first_site(client))["id"])]
    assert len(users) == tenant["users"]
    assert sum(bool(u.has_mailbox) for u in users) == tenant["mailboxes"]
    assert any(u.onedrive for u in users) and groups and lists
    assert len(drives) <= tenant["drives"] and drives


async def test_bad_secret_is_refused_with_a_reason(emu: Emulator) -> None:
    with pytest.raises(GraphAuthError) as info:
        await verify_tenant(replace(emu.settings(), credential=ClientSecret("wrong")))
    assert info.value.reason and "wrong" not in str(info.value)


async def test_mail_rounds_follow_user_activity_and_survive_a_resync(emu: Emulator) -> None:
    emu.admin("POST", "config", {"deltaDuplicates": True})  # Graph replays entities; last one wins
    async with connect(emu) as client:
        users = await mailbox_users(client)
        boxes = [Mailbox(uid) for uid in users]
        for box in boxes:
            await box.sync(client)
            assert box.ids() == await mailbox_truth(client, box.user_id)

        emu.admin(
            "POST",
            "activity",
            {"seed": 1, "newMessages": 6, "updatedMessages": 4, "movedMessages": 4, "deletedMessages": 4},
        )
        for box in boxes:
            await box.sync(client)
            assert box.ids() == await mailbox_truth(client, box.user_id)
        assert sum(b.resyncs for b in boxes) == 0

        # Changes made while the delta state is lost must come out of the resync diff.
        emu.admin("POST", "activity", {"seed": 2, "newMessages": 3, "movedMessages": 3, "deletedMessages": 5})
        emu.admin("POST", "expire", {"scope": "mail"})
        for box in boxes:
            await box.sync(client)
            assert box.ids() == await mailbox_truth(client, box.user_id)
        assert all(b.resyncs > 0 for b in boxes)


async def test_drive_rounds_downloads_and_a_resync(emu: Emulator) -> None:
    emu.admin("POST", "config", {"deltaDuplicates": True})
    async with connect(emu) as client:
        drive_ids = await all_drive_ids(client)
        models = {d: Collection() for d in drive_ids}
        for drive_id, model in models.items():
            await model.sync(lambda drive_id=drive_id, **kw: drive_delta(client, drive_id, **kw))

        done = emu.admin("POST", "activity", {"seed": 3, "newFiles": 3, "editedFiles": 3, "deletedFiles": 3})
        for drive_id, model in models.items():
            await model.sync(lambda drive_id=drive_id, **kw: drive_delta(client, drive_id, **kw))
            assert set(model.items) == set(await drive_truth(client, drive_id))
        for edit in done["editedFiles"] + done["newFiles"]:
            if edit["drive"] in models and edit["id"] in models[edit["drive"]].items:
                await read_file_checked(client, edit["drive"], models[edit["drive"]].items[edit["id"]])

        emu.admin("POST", "activity", {"seed": 4, "newFiles": 2, "deletedFiles": 3})
        emu.admin("POST", "expire", {"scope": "drive"})
        for drive_id, model in models.items():
            await model.sync(lambda drive_id=drive_id, **kw: drive_delta(client, drive_id, **kw))
            truth = await drive_truth(client, drive_id)
            assert set(model.items) == set(truth)
            assert {k: v.get("eTag") for k, v in model.items.items()} == {
                k: v.get("eTag") for k, v in truth.items()
            }
        assert all(m.resyncs == 1 for m in models.values())


async def test_throttling_storm_costs_time_not_data(emu: Emulator) -> None:
    async with connect(emu) as client:
        user = (await mailbox_users(client))[0]
        box = Mailbox(user)
        await box.sync(client)
        some = sorted({mid for ids in box.ids().values() for mid in ids})[:12]
        baseline = {mid: await read_mime(client, user, mid) for mid in some}

    # The server admits 1 request at a time per mailbox. Four clients (four processes, or other
    # apps on the same mailbox) each start at 4: a storm in which 429s are the norm at first.
    emu.admin("POST", "config", {"latencyMs": 40, "throttle": {"enabled": True, "mailboxConcurrency": 1}})
    transports = [CountingTransport(verify=tls_verification(str(emu.cert))) for _ in range(4)]
    clients = [connect(emu, transport=t) for t in transports]
    try:
        boxes = [Mailbox(user) for _ in clients]
        got = await asyncio.gather(
            *(b.sync(c) for b, c in zip(boxes, clients, strict=True)),
            *(read_mime(clients[i % 4], user, mid) for i, mid in enumerate(some)),
        )
        lanes = [c.lane(Scope.mailbox(user)) for c in clients]
    finally:
        for c in clients:
            await c.aclose()
    assert dict(zip(some, got[4:], strict=True)) == baseline
    assert all(b.ids() == box.ids() for b in boxes)
    statuses = [s for t in transports for s in t.statuses]
    throttled = statuses.count(429) / len(statuses)
    print(
        f"storm: {throttled:.0%} of {len(statuses)} answers were 429; lanes paused "
        f"{[lane.pauses for lane in lanes]}x, caps now {[lane.limit for lane in lanes]}"
    )
    # Typically 30-35 % (measured); the bound leaves room for scheduling noise on a busy machine.
    assert throttled >= 0.25, f"only {throttled:.0%} of {len(statuses)} answers were 429: no storm"
    assert all(lane.limit < 4 for lane in lanes)  # each client learned to send fewer at a time


async def test_random_5xx_and_dropped_connections(emu: Emulator) -> None:
    async with connect(emu) as client:
        user = (await mailbox_users(client))[1]
        calm = Mailbox(user)
        await calm.sync(client)
        some = sorted({mid for ids in calm.ids().values() for mid in ids})[:15]
        mime = {mid: await read_mime(client, user, mid) for mid in some}
        drive_id = (await get_user_drive(client, user) or {}).get("id") or (await all_drive_ids(client))[0]
        files = {k: v for k, v in (await drive_truth(client, drive_id)).items() if "file" in v}

    emu.admin("POST", "config", {"faultRate": 0.2})
    transport = CountingTransport(verify=tls_verification(str(emu.cert)))
    async with connect(emu, transport=transport) as client:
        stormy = Mailbox(user)
        await stormy.sync(client, page_size=20)
        assert stormy.ids() == calm.ids()
        for mid in some:
            assert await read_mime(client, user, mid) == mime[mid]
        model = Collection()
        await model.sync(lambda **kw: drive_delta(client, drive_id, **kw))
        assert set(model.items) == set(await drive_truth(client, drive_id))
        for item in list(files.values())[:8]:
            await read_file_checked(client, drive_id, item)
    faults = sum(1 for s in transport.statuses if s >= 500)
    print(f"faults: {faults} 5xx of {len(transport.statuses)} answers (plus dropped connections)")
    assert faults > 0, "the fault knob produced no failures"


async def test_token_expiry_in_the_middle_of_a_delta_round(emu: Emulator) -> None:
    class Frozen:
        """A clock that never advances: the provider never refreshes early, so only the
        service's 401 can make it fetch a new token (the path a clock skew would take)."""

        def monotonic(self) -> float:
            return 0.0

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    settings = emu.settings()
    async with connect(emu) as client:
        user = (await mailbox_users(client))[0]
        truth = await mailbox_truth(client, user)
    emu.admin("POST", "config", {"tokenLifetimeSeconds": 1, "latencyMs": 200})

    refreshing = CachedTokenProvider(MsalTokenSource(settings))
    frozen = CachedTokenProvider(MsalTokenSource(settings), timer=Frozen())
    # One folder, two messages a page, 200 ms a page: a round of well over a token's lifetime.
    folder = max(truth, key=lambda fid: len(truth[fid]))
    assert len(truth[folder]) >= 20
    for provider in (refreshing, frozen):
        async with GraphClient.for_tenant(settings, tokens=provider) as client:
            messages = Collection()
            await messages.sync(lambda **kw: messages_delta(client, user, folder, page_size=2, **kw))
        await provider.aclose()
        assert set(messages.items) == truth[folder]
        assert provider.fetch_count >= 2, "the token never expired during the round"


async def test_restore_writers_round_trip(emu: Emulator) -> None:
    emu.admin("POST", "config", {"enforceUploadFragmentMultiple": True})  # fragments of 320 KiB multiples
    async with connect(emu) as client:
        user = (await mailbox_users(client))[0]
        box = Mailbox(user)
        await box.sync(client)
        source_id = next(iter(next(c for c in box.messages.values() if c.items).items))
        source = await get_message(client, user, source_id)
        mime = await read_mime(client, user, source_id)

        folder = await create_mail_folder(client, user, f"Restored {uuid.uuid4().hex[:8]}")
        from_mime = await create_message_from_mime(client, user, folder["id"], mime)
        assert from_mime["subject"] == email.message_from_bytes(mime)["Subject"]

        restored = await create_message(
            client,
            user,
            folder["id"],
            {**source, "isRead": True},
            sent_at=source.get("sentDateTime"),
            received_at=source.get("receivedDateTime"),
        )
        big = pattern_bytes(7, 4_500_000)
        await add_attachment(
            client,
            user,
            restored["id"],
            name="small.txt",
            size=5,
            content=byte_stream(5),
            content_type="text/plain",
        )
        await add_attachment(
            client, user, restored["id"], name="big.bin", size=len(big), content=byte_stream(len(big))
        )
        again = await get_message(client, user, restored["id"])
        assert again["isDraft"] is False and again["isRead"] is True
        assert again["receivedDateTime"][:19] == source["receivedDateTime"][:19]
        attached = {a["name"]: a async for a in list_attachments(client, user, restored["id"])}
        assert attached["big.bin"]["size"] == len(big)
        got = b"".join(
            [c async for c in attachment_content(client, user, restored["id"], attached["big.bin"]["id"])]
        )
        assert got == pattern_bytes(0, len(big))
        moved = await move_message(client, user, restored["id"], "archive")
        await set_message_read(client, user, moved["id"], False)
        assert (await get_message(client, user, moved["id"]))["isRead"] is False

        drive = await get_user_drive(client, user)
        assert drive is not None
        root = await client.get_json(f"/drives/{drive['id']}/root", scope=Scope.sharepoint())
        target = await create_drive_folder(client, drive["id"], root["id"], f"Restore {uuid.uuid4().hex[:8]}")
        small = await upload_file(
            client,
            drive["id"],
            parent_id=target["id"],
            name="a.txt",
            size=3,
            content=byte_stream(3),
            conflict="fail",
        )
        with pytest.raises(GraphConflict):
            await upload_file(
                client,
                drive["id"],
                parent_id=target["id"],
                name="a.txt",
                size=3,
                content=byte_stream(3),
                conflict="fail",
            )
        renamed = await upload_file(
            client,
            drive["id"],
            parent_id=target["id"],
            name="a.txt",
            size=3,
            content=byte_stream(3),
            conflict="rename",
        )
        assert renamed["id"] != small["id"] and renamed["name"] != "a.txt"
        found = await find_drive_item(client, drive["id"], f"{target['name']}/a.txt")
        assert found is not None and found["id"] == small["id"]
        assert await find_drive_item(client, drive["id"], f"{target['name']}/absent.txt") is None

        size = 7_000_000
        large = await upload_file(
            client,
            drive["id"],
            parent_id=target["id"],
            name="large.bin",
            size=size,
            content=byte_stream(size),
            file_system_info={"lastModifiedDateTime": "2023-03-04T05:06:07Z"},
        )
        assert large["size"] == size
        assert (await read_file_checked(client, drive["id"], large)) == pattern_bytes(0, size)
        second = await upload_file(
            client, drive["id"], item_id=large["id"], size=1000, content=byte_stream(1000)
        )
        versions = [v async for v in list_versions(client, drive["id"], second["id"])]
        assert len(versions) >= 2
        older = versions[1]["id"]
        old = b"".join([c async for c in download_file(client, drive["id"], large["id"], version_id=older)])
        assert old == pattern_bytes(0, size)
        await restore_version(client, drive["id"], large["id"], older)
        current = await client.get_json(
            f"/drives/{drive['id']}/items/{large['id']}", scope=Scope.sharepoint()
        )
        assert current["size"] == size

        site = await first_site(client)
        lists = [li async for li in list_lists(client, site["id"])]
        generic = next(li for li in lists if li.get("list", {}).get("template") == "genericList")
        baseline = Collection()
        await baseline.sync(lambda **kw: list_items_delta(client, site["id"], generic["id"], **kw))
        created = await create_list_item(client, site["id"], generic["id"], {"Title": "Restored task"})
        await update_list_item(
            client, site["id"], generic["id"], created["id"], {"Title": "Restored task (edited)"}
        )
        await baseline.sync(lambda **kw: list_items_delta(client, site["id"], generic["id"], **kw))
        assert baseline.items[created["id"]]["fields"]["Title"] == "Restored task (edited)"


async def test_certificate_credentials_through_msal(emu: Emulator) -> None:
    from cryptography.hazmat.primitives import serialization

    from m365vault.m365.settings import ClientCertificate
    from tests.m365.test_auth import make_certificate

    pfx, _, cert = make_certificate(b"pw")
    emu.admin("POST", "certificates", {"pem": cert.public_bytes(serialization.Encoding.PEM).decode()})
    credential = ClientCertificate.from_pfx(pfx, "pw")
    info = await verify_tenant(replace(emu.settings(), credential=credential))
    assert info.name == TENANT


async def test_calendar_and_contacts_rounds(emu: Emulator) -> None:
    from datetime import UTC, datetime

    from m365vault.m365.delta import calendar_delta, contact_folders_delta, contacts_delta

    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    async with connect(emu) as client:
        user = (await mailbox_users(client))[0]
        events = Collection()

        def calendar(**kw: Any) -> AsyncIterator[DeltaPage]:
            return calendar_delta(client, user, start=start, end=end, page_size=10, **kw)

        await events.sync(calendar)
        assert events.items
        gone = sorted(events.items)[0]
        await client.request("DELETE", f"/users/{user}/events/{gone}", scope=Scope.mailbox(user))
        new = await client.send_json(
            "POST",
            f"/users/{user}/events",
            {
                "subject": "Restore drill",
                "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
            },
            scope=Scope.mailbox(user),
        )
        await events.sync(calendar)
        assert gone not in events.items and new["id"] in events.items
        emu.admin("POST", "expire", {"scope": "calendar"})
        await events.sync(calendar)
        fresh = Collection()
        await fresh.sync(calendar)
        assert set(events.items) == set(fresh.items) and events.resyncs == 1

        folders = Collection()
        await folders.sync(lambda **kw: contact_folders_delta(client, user, **kw))
        for folder_id in folders.items:
            contacts = Collection()
            await contacts.sync(
                lambda folder_id=folder_id, **kw: contacts_delta(client, user, folder_id, **kw)
            )
            listed = {
                c["id"]
                async for c in items(
                    client, f"/users/{user}/contactFolders/{folder_id}/contacts", scope=Scope.mailbox(user)
                )
            }
            assert set(contacts.items) == listed


async def test_uploads_survive_faults(emu: Emulator) -> None:
    transport = CountingTransport(verify=tls_verification(str(emu.cert)))
    async with connect(emu, transport=transport) as client:
        user = (await mailbox_users(client))[0]
        drive = await get_user_drive(client, user)
        assert drive is not None
        root = await client.get_json(f"/drives/{drive['id']}/root", scope=Scope.sharepoint())
        target = await create_drive_folder(client, drive["id"], root["id"], f"Faulty {uuid.uuid4().hex[:8]}")
        size = 12_000_000  # four fragments
        uploaded = []
        emu.admin("POST", "config", {"faultRate": 0.25, "enforceUploadFragmentMultiple": True})
        start = len(transport.statuses)
        # Upload until the faults have struck at least twice (the fault sequence is seeded, not timed).
        for n in range(6):
            uploaded.append(
                await upload_file(
                    client,
                    drive["id"],
                    parent_id=target["id"],
                    name=f"big{n}.bin",
                    size=size,
                    content=byte_stream(size),
                )
            )
            if sum(1 for st in transport.statuses[start:] if st == 0 or st >= 500) >= 2:
                break
        emu.admin("POST", "config", {"faultRate": 0.0})
        faults = sum(1 for st in transport.statuses[start:] if st == 0 or st >= 500)
        assert faults >= 2, "the fault knob never struck an upload"
        for item in uploaded:
            assert item["size"] == size
            assert await read_file_checked(client, drive["id"], item) == pattern_bytes(0, size)
