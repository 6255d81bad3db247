"""Restore writers: MIME and JSON message creation, attachment and file upload sessions, versions, lists."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from m365vault.m365.errors import GraphConflict
from m365vault.m365.writers import (
    UPLOAD_FRAGMENT,
    ContentTooLarge,
    add_attachment,
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
from tests.m365.fakes import Router, byte_stream, graph_error, json_of, make_client, pattern_bytes

MIME = b"From: a@contoso.com\r\nTo: b@contoso.com\r\nSubject: restored\r\n\r\nhello\r\n"


def content_range(request: httpx.Request) -> tuple[int, int, int]:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers["Content-Range"])
    assert match, request.headers["Content-Range"]
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_create_message_from_mime_posts_base64_text() -> None:
    router = Router()
    router.on(
        "POST", r"/users/u1/mailFolders/f1/messages$", httpx.Response(201, json={"id": "m9", "isDraft": True})
    )
    client, _, _ = make_client(router)
    async with client:
        created = await create_message_from_mime(client, "u1", "f1", MIME)
    request = router.requests[0]
    assert created["id"] == "m9"
    assert request.headers["Content-Type"] == "text/plain"
    assert base64.b64decode(request.content) == MIME


async def test_mime_over_the_request_cap_is_refused_before_sending() -> None:
    router = Router()
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(ContentTooLarge):
            await create_message_from_mime(client, "u1", "f1", b"x" * (3_200_000))
    assert router.requests == []


async def test_json_route_creates_a_non_draft_with_original_times() -> None:
    router = Router()
    router.on("POST", r"/mailFolders/f1/messages$", httpx.Response(201, json={"id": "m9", "isDraft": False}))
    client, _, _ = make_client(router)
    backed_up = {
        "id": "old",
        "subject": "Quarterly",
        "body": {"contentType": "html", "content": "<p>hi</p>"},
        "from": {"emailAddress": {"address": "a@contoso.com"}},
        "toRecipients": [{"emailAddress": {"address": "b@contoso.com"}}],
        "isRead": True,
        "categories": ["Blue"],
        "sentDateTime": "2023-05-01T10:00:00Z",
        "receivedDateTime": "2023-05-01T10:00:05Z",
        "internetMessageHeaders": [{"name": "X-Custom", "value": "1"}, {"name": "Received", "value": "x"}],
        "changeKey": "CQAAAB",
    }
    async with client:
        await create_message(client, "u1", "f1", backed_up)
    sent = json_of(router.requests[0])
    assert sent["subject"] == "Quarterly" and sent["categories"] == ["Blue"]
    assert "id" not in sent and "changeKey" not in sent
    assert sent["internetMessageHeaders"] == [{"name": "X-Custom", "value": "1"}]
    props = {p["id"]: p["value"] for p in sent["singleValueExtendedProperties"]}
    assert int(props["Integer 0x0E07"]) & 0x8 == 0  # not "unsent": Exchange stores a non-draft
    assert props["SystemTime 0x0039"] == "2023-05-01T10:00:00Z"
    assert props["SystemTime 0x0E06"] == "2023-05-01T10:00:05Z"


async def test_json_route_takes_explicit_times() -> None:
    router = Router()
    router.on("POST", r"/messages$", httpx.Response(201, json={"id": "m"}))
    client, _, _ = make_client(router)
    async with client:
        await create_message(
            client, "u1", "f1", {"subject": "s"}, sent_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        )
    props = {p["id"]: p["value"] for p in json_of(router.requests[0])["singleValueExtendedProperties"]}
    assert props["SystemTime 0x0039"] == "2024-01-02T03:04:05Z"


async def test_small_attachment_is_posted_inline() -> None:
    router = Router()
    router.on("POST", r"/messages/m1/attachments$", httpx.Response(201, json={"id": "a1"}))
    client, _, _ = make_client(router)
    async with client:
        await add_attachment(
            client, "u1", "m1", name="n.txt", size=5, content=chunks_of(b"hello"), content_type="text/plain"
        )
    body = json_of(router.requests[0])
    assert body["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert base64.b64decode(body["contentBytes"]) == b"hello"


async def test_large_attachment_uses_an_upload_session_in_order() -> None:
    size = 7_500_000
    upload = "https://outlook.office.com/api/v2.0/Users('u1')/Messages('m1')/AttachmentSessions('s1')?authtoken=SECRET"
    router = Router()
    router.on(
        "POST",
        r"/attachments/createUploadSession$",
        httpx.Response(
            201,
            json={
                "uploadUrl": upload,
                "expirationDateTime": "2030-01-01T00:00:00Z",
                "nextExpectedRanges": ["0-"],
            },
        ),
    )
    received = bytearray()

    def put(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers
        start, end, total = content_range(request)
        assert (
            start == len(received)
            and total == size
            and end - start + 1 == len(request.content) <= 4 * 1024 * 1024
        )
        received.extend(request.content)
        if len(received) == size:
            return httpx.Response(
                201,
                headers={
                    "Location": "https://outlook.office.com/api/v2.0/Users('u1')/Messages('m1')/Attachments('a1')"
                },
            )
        return httpx.Response(
            200,
            json={"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [str(len(received))]},
        )

    router.on("PUT", r"AttachmentSessions", put)
    client, _, _ = make_client(router)
    async with client:
        result = await add_attachment(
            client, "u1", "m1", name="big.pdf", size=size, content=byte_stream(size)
        )
    assert bytes(received) == pattern_bytes(0, size)
    assert "Attachments('a1')" in result["location"]
    session = json_of(router.requests[0])["AttachmentItem"]
    assert session == {
        "attachmentType": "file",
        "name": "big.pdf",
        "size": size,
        "contentType": "application/octet-stream",
    }


async def test_mail_folder_move_and_read_state() -> None:
    router = Router()
    router.on("POST", r"/mailFolders/p1/childFolders$", httpx.Response(201, json={"id": "f2"}))
    router.on("POST", r"/messages/m1/move$", httpx.Response(201, json={"id": "m1", "parentFolderId": "f2"}))
    router.on("PATCH", r"/messages/m1$", httpx.Response(200, json={"id": "m1", "isRead": True}))
    client, _, _ = make_client(router)
    async with client:
        assert (await create_mail_folder(client, "u1", "Restored", parent_id="p1"))["id"] == "f2"
        assert (await move_message(client, "u1", "m1", "f2"))["parentFolderId"] == "f2"
        assert (await set_message_read(client, "u1", "m1", True))["isRead"] is True
    assert json_of(router.requests[1]) == {"destinationId": "f2"}
    assert json_of(router.requests[2]) == {"isRead": True}


async def test_small_file_is_a_simple_put_with_conflict_behaviour_in_the_url() -> None:
    router = Router()
    router.on(
        "PUT", r"/items/p1:/a%20b\.txt:/content", httpx.Response(201, json={"id": "i1", "name": "a b.txt"})
    )
    client, _, _ = make_client(router)
    async with client:
        item = await upload_file(
            client, "d1", parent_id="p1", name="a b.txt", size=3, content=chunks_of(b"abc"), conflict="fail"
        )
    assert item["id"] == "i1"
    request = router.requests[0]
    assert request.url.params["@microsoft.graph.conflictBehavior"] == "fail"
    assert request.content == b"abc"


async def test_name_conflict_is_classified() -> None:
    router = Router()
    router.on("PUT", r"/content", graph_error(409, "nameAlreadyExists", "Name already exists"))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphConflict):
            await upload_file(
                client, "d1", parent_id="p1", name="x", size=1, content=chunks_of(b"x"), conflict="fail"
            )


async def test_upload_session_fragments_are_320k_multiples_and_resume_after_a_lost_answer() -> None:
    size = UPLOAD_FRAGMENT * 2 + 12345
    upload = "https://contoso.sharepoint.com/_api/v2.0/drives/d1/items/up?tempauth=SECRET"
    router = Router()
    router.on(
        "POST",
        r"createUploadSession$",
        httpx.Response(200, json={"uploadUrl": upload, "expirationDateTime": "2030-01-01T00:00:00Z"}),
    )
    stored = bytearray()
    puts: list[str] = []
    lost = {"done": False}

    def put(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers
        puts.append(request.headers["Content-Range"])
        start = content_range(request)[0]
        if start != len(stored):
            return graph_error(416, "invalidRange", "Uploaded fragment overlaps with existing data.")
        stored.extend(request.content)
        if len(stored) == UPLOAD_FRAGMENT and not lost["done"]:
            lost["done"] = True
            raise httpx.ReadError("answer lost after the server stored the fragment")
        if len(stored) == size:
            return httpx.Response(201, json={"id": "i9", "size": size})
        return httpx.Response(202, json={"nextExpectedRanges": [f"{len(stored)}-"]})

    router.on("PUT", r"tempauth=SECRET", put)
    router.on(
        "GET",
        r"tempauth=SECRET",
        lambda r: httpx.Response(200, json={"nextExpectedRanges": [f"{len(stored)}-"]}),
    )
    client, _, _ = make_client(router)
    async with client:
        item = await upload_file(
            client,
            "d1",
            parent_id="p1",
            name="big.bin",
            size=size,
            content=byte_stream(size),
            file_system_info={"lastModifiedDateTime": "2023-01-01T00:00:00Z"},
        )
    assert item["id"] == "i9" and bytes(stored) == pattern_bytes(0, size)
    assert UPLOAD_FRAGMENT % (320 * 1024) == 0
    assert puts[0] == f"bytes 0-{UPLOAD_FRAGMENT - 1}/{size}"
    assert puts[1] == puts[0]  # replayed after the lost answer, answered 416, then status asked
    session = json_of(router.requests[0])["item"]
    assert session["@microsoft.graph.conflictBehavior"] == "replace" and session["name"] == "big.bin"
    assert session["fileSystemInfo"] == {"lastModifiedDateTime": "2023-01-01T00:00:00Z"}


async def test_failed_upload_cancels_its_session() -> None:
    upload = "https://contoso.sharepoint.com/up?tempauth=S"
    router = Router()
    router.on("POST", r"createUploadSession$", httpx.Response(200, json={"uploadUrl": upload}))
    router.on("PUT", r"tempauth=S", graph_error(400, "invalidRequest"))
    router.on("DELETE", r"tempauth=S", httpx.Response(204))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(Exception, match=r"invalidRequest|rejected"):
            await upload_file(client, "d1", item_id="i1", size=5_000_000, content=byte_stream(5_000_000))
    assert len(router.sent("DELETE", r"tempauth=S")) == 1


async def test_restore_version_and_list_items() -> None:
    router = Router()
    router.on("POST", r"/items/i1/versions/2\.0/restoreVersion$", httpx.Response(204))
    router.on(
        "POST", r"/sites/s1/lists/l1/items$", httpx.Response(201, json={"id": "7", "fields": {"Title": "t"}})
    )
    router.on("PATCH", r"/lists/l1/items/7/fields$", httpx.Response(200, json={"Title": "u"}))
    client, _, _ = make_client(router)
    async with client:
        await restore_version(client, "d1", "i1", "2.0")
        assert (await create_list_item(client, "s1", "l1", {"Title": "t"}))["id"] == "7"
        assert (await update_list_item(client, "s1", "l1", "7", {"Title": "u"}))["Title"] == "u"
    assert json_of(router.requests[1]) == {"fields": {"Title": "t"}}
    assert json_of(router.requests[2]) == {"Title": "u"}


async def test_item_attachment_embeds_the_item() -> None:
    from m365vault.m365.writers import add_item_attachment

    router = Router()
    router.on("POST", r"/messages/m1/attachments$", httpx.Response(201, json={"id": "a2"}))
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(ValueError, match=r"odata\.type"):
            await add_item_attachment(client, "u1", "m1", name="fwd", item={"subject": "x"})
        await add_item_attachment(
            client, "u1", "m1", name="fwd", item={"@odata.type": "#microsoft.graph.message", "subject": "x"}
        )
    body = json_of(router.requests[0])
    assert body["@odata.type"] == "#microsoft.graph.itemAttachment" and body["item"]["subject"] == "x"
