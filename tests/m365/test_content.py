"""Content streams: MIME, attachments, 302 downloads with Range resume, versions, bounded memory."""

from __future__ import annotations

import hashlib
import re
import tracemalloc

import httpx
import pytest

from m365vault.m365.content import (
    JOINED,
    attachment_content,
    download_file,
    list_attachments,
    list_versions,
    message_mime,
)
from m365vault.m365.errors import GraphStreamInterrupted
from m365vault.m365.throttle import LimitPolicy
from tests.m365.fakes import Router, byte_stream, collection, make_client, pattern_bytes

DOWNLOAD = "https://contoso.sharepoint.com/sites/x/_layouts/15/download.aspx?UniqueId=1&tempauth=abc"
MIME = b"Received: from mail\r\nSubject: hi\r\nX-MS-Exchange-Organization: 1\r\n\r\nbody\r\n"


async def drain(stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_message_mime_is_streamed_with_immutable_ids() -> None:
    router = Router()
    router.on(
        "GET",
        r"/users/u1/messages/m1/\$value$",
        httpx.Response(200, content=MIME, headers={"Content-Type": "text/plain"}),
    )
    client, _, _ = make_client(router)
    async with client:
        assert await drain(message_mime(client, "u1", "m1")) == MIME
    assert 'IdType="ImmutableId"' in router.requests[0].headers["Prefer"]


async def test_mime_drop_after_bytes_is_reported_not_glued() -> None:
    router = Router()
    router.on(
        "GET", r"\$value$", lambda r: httpx.Response(200, content=byte_stream(300_000, fail_after=100_000))
    )
    client, _, _ = make_client(router)
    got = bytearray()
    async with client:
        with pytest.raises(GraphStreamInterrupted) as info:
            async for chunk in message_mime(client, "u1", "m1", chunk_size=65536):
                got += chunk
    assert info.value.bytes_delivered == len(got) > 0 and len(got) <= 100_000


async def test_records_are_joined_and_a_drop_hands_out_every_byte_received_first() -> None:
    router = Router()
    record = 16 * 1024  # what TLS hands out per read
    router.on(
        "GET",
        r"\$value$",
        lambda r: httpx.Response(200, content=byte_stream(1_000_000, chunk=record, fail_after=700_000)),
    )
    client, _, _ = make_client(router)
    sizes: list[int] = []
    got = bytearray()
    async with client:
        with pytest.raises(GraphStreamInterrupted) as info:
            async for chunk in message_mime(client, "u1", "m1"):
                sizes.append(len(chunk))
                got += chunk
    assert sizes[:-1] == [JOINED] * (700_000 // JOINED)  # joined records, not one piece per record
    assert bytes(got) == pattern_bytes(0, 700_000)  # nothing that arrived was held back
    assert info.value.bytes_delivered == 700_000


async def test_attachments_metadata_and_content() -> None:
    router = Router()
    router.on(
        "GET",
        r"/messages/m1/attachments\?",
        collection(
            [
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "id": "a1",
                    "name": "r.pdf",
                    "contentType": "application/pdf",
                    "size": 5,
                    "isInline": False,
                }
            ]
        ),
    )
    router.on("GET", r"/attachments/a1/\$value$", httpx.Response(200, content=b"%PDF-"))
    client, _, _ = make_client(router)
    async with client:
        found = [a async for a in list_attachments(client, "u1", "m1")]
        body = await drain(attachment_content(client, "u1", "m1", "a1"))
    assert found[0]["name"] == "r.pdf" and body == b"%PDF-"
    assert "contentBytes" not in router.requests[0].url.params["$select"]


def redirect_to(url: str) -> httpx.Response:
    return httpx.Response(302, headers={"Location": url})


def ranged_file(
    size: int, *, drop_at: set[int] | None = None, honour_range: bool = True, etag: str | None = None
):
    """A download host serving `size` pattern bytes; drops the connection once at each offset in drop_at."""
    drops = set(drop_at or ())

    def handler(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers  # pre-authenticated URL: no token
        start = 0
        match = re.match(r"bytes=(\d+)-", request.headers.get("Range", ""))
        if match and honour_range:
            start = int(match.group(1))
        fail = min((d for d in drops if d > start), default=None)
        if fail is not None:
            drops.discard(fail)

        async def body():
            async for chunk in byte_stream(size - start, fail_after=None if fail is None else fail - start):
                yield chunk if not start else pattern_bytes(start, 0) + chunk

        # byte_stream restarts its pattern at 0; shift it so offsets match the file.
        async def shifted():
            pos = start
            async for chunk in body():
                yield pattern_bytes(pos, len(chunk))
                pos += len(chunk)

        headers = {
            "Content-Length": str(size - start),
            "Accept-Ranges": "bytes",
            **({"ETag": etag} if etag else {}),
        }
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
            return httpx.Response(206, headers=headers, content=shifted())
        return httpx.Response(200, headers=headers, content=shifted())

    return handler


async def test_download_follows_302_without_the_token_and_resumes_with_range() -> None:
    size = 5_000_000
    router = Router()
    router.on("GET", r"/drives/d1/items/i1/content$", redirect_to(DOWNLOAD))
    router.on("GET", r"download\.aspx", ranged_file(size, drop_at={1_000_000, 3_500_000}))
    client, _, _ = make_client(router)
    async with client:
        data = await drain(download_file(client, "d1", "i1"))
    assert hashlib.sha256(data).digest() == hashlib.sha256(pattern_bytes(0, size)).digest()
    ranges = [r.headers.get("Range") for r in router.sent("GET", r"download\.aspx")]
    assert ranges == [None, "bytes=1000000-", "bytes=3500000-"]
    assert router.sent("GET", r"/content$")[0].headers["Authorization"] == "Bearer token-1"


@pytest.mark.parametrize("etag", [None, '"{A},1"'])
async def test_download_from_a_server_that_ignores_range(etag: str | None) -> None:
    size = 700_000
    router = Router()
    router.on("GET", r"/content$", redirect_to(DOWNLOAD))
    router.on("GET", r"download\.aspx", ranged_file(size, drop_at={300_000}, honour_range=False, etag=etag))
    client, _, _ = make_client(router)
    async with client:
        data = await drain(download_file(client, "d1", "i1", chunk_size=65536))
    assert data == pattern_bytes(0, size)


async def test_expired_download_url_is_fetched_again() -> None:
    router = Router()
    second = DOWNLOAD.replace("abc", "def")
    router.on("GET", r"/content$", redirect_to(DOWNLOAD), redirect_to(second))
    router.on("GET", r"tempauth=abc", httpx.Response(401, json={"error": {"code": "unauthenticated"}}))
    router.on("GET", r"tempauth=def", ranged_file(1000))
    client, _, _ = make_client(router)
    async with client:
        assert await drain(download_file(client, "d1", "i1")) == pattern_bytes(0, 1000)
    assert len(router.sent("GET", r"/content$")) == 2


async def test_a_known_download_url_saves_the_content_request_until_it_expires() -> None:
    router = Router()
    fresh = DOWNLOAD.replace("abc", "def")
    router.on("GET", r"/content$", redirect_to(fresh))
    router.on("GET", r"tempauth=abc", ranged_file(1000), httpx.Response(401, json={"error": {"code": "x"}}))
    router.on("GET", r"tempauth=def", ranged_file(1000))
    client, _, _ = make_client(router)
    async with client:
        assert await drain(download_file(client, "d1", "i1", download_url=DOWNLOAD)) == pattern_bytes(0, 1000)
        assert not router.sent("GET", r"/content$")
        assert "Authorization" not in router.sent("GET", r"tempauth=abc")[0].headers  # pre-authenticated
        # Expired by the next read: /content hands out a fresh one.
        assert await drain(download_file(client, "d1", "i1", download_url=DOWNLOAD)) == pattern_bytes(0, 1000)
    assert len(router.sent("GET", r"/content$")) == 1 and len(router.sent("GET", r"tempauth=def")) == 1


async def test_a_download_from_a_known_url_still_costs_its_resource_unit_once() -> None:
    router = Router()
    router.on("GET", r"download\.aspx", ranged_file(300_000, drop_at={100_000}))
    # One RU a minute: the second file waits a minute; the first one's resume waits nothing.
    client, _, timer = make_client(router, limits=LimitPolicy(sharepoint_resource_units_per_minute=1))
    started = timer.now
    async with client:
        first = await drain(download_file(client, "d1", "i1", download_url=DOWNLOAD))
        resumed_at = timer.now
        await drain(download_file(client, "d1", "i2", download_url=DOWNLOAD))
    assert first == pattern_bytes(0, 300_000) and len(router.sent("GET", r"download\.aspx")) == 3
    assert resumed_at - started < 60 <= timer.now - started


async def test_version_content_and_listing() -> None:
    router = Router()
    router.on(
        "GET",
        r"/items/i1/versions$",
        collection(
            [
                {"id": "3.0", "size": 3, "lastModifiedDateTime": "2024-01-03T00:00:00Z"},
                {"id": "2.0", "size": 2},
                {"id": "1.0", "size": 1},
            ]
        ),
    )
    router.on("GET", r"/items/i1/versions/2\.0/content$", redirect_to(DOWNLOAD))
    router.on("GET", r"download\.aspx", ranged_file(2))
    client, _, _ = make_client(router)
    async with client:
        versions = [v["id"] async for v in list_versions(client, "d1", "i1")]
        old = await drain(download_file(client, "d1", "i1", version_id="2.0"))
    assert versions == ["3.0", "2.0", "1.0"] and old == pattern_bytes(0, 2)


async def test_large_download_stays_within_a_buffer_of_memory() -> None:
    size = 64 * 1024 * 1024
    router = Router()
    router.on("GET", r"/content$", redirect_to(DOWNLOAD))
    router.on(
        "GET",
        r"download\.aspx",
        lambda r: httpx.Response(
            200, headers={"Content-Length": str(size)}, content=byte_stream(size, chunk=1 << 20)
        ),
    )
    client, _, _ = make_client(router)
    digest = hashlib.sha256()
    total = 0
    async with client:
        tracemalloc.start()
        try:
            async for chunk in download_file(client, "d1", "i1"):
                assert len(chunk) <= 1 << 20
                digest.update(chunk)
                total += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == size
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"


async def test_a_resume_that_announces_another_size_is_not_spliced() -> None:
    router = Router()
    router.on("GET", r"/content$", redirect_to(DOWNLOAD))
    first = {"done": False}

    def host(request: httpx.Request) -> httpx.Response:
        if not first["done"]:
            first["done"] = True
            headers = {"Content-Length": "1024", "ETag": '"{A},1"'}
            return httpx.Response(200, headers=headers, content=byte_stream(1024, fail_after=100))
        assert request.headers["If-Range"] == '"{A},1"' and request.headers["Range"] == "bytes=100-"
        return httpx.Response(
            206, headers={"Content-Range": "bytes 100-4999/5000"}, content=pattern_bytes(100, 4900)
        )

    router.on("GET", r"download\.aspx", host)
    client, _, _ = make_client(router)
    async with client:
        with pytest.raises(GraphStreamInterrupted, match="size changed"):
            await drain(download_file(client, "d1", "i1"))


async def test_a_changed_file_answering_if_range_with_200_is_not_spliced() -> None:
    """Same size, new ETag: the 200 is the new version, whose tail must not follow the old head."""
    router = Router()
    router.on("GET", r"/content$", redirect_to(DOWNLOAD))
    calls = {"n": 0}

    def host(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            headers = {"Content-Length": "5000", "ETag": '"{A},1"'}
            return httpx.Response(200, headers=headers, content=byte_stream(5000, fail_after=1000))
        assert request.headers["If-Range"] == '"{A},1"' and request.headers["Range"] == "bytes=1000-"
        return httpx.Response(200, headers={"ETag": '"{A},2"'}, content=bytes(5000))

    router.on("GET", r"download\.aspx", host)
    client, _, _ = make_client(router)
    got = bytearray()
    async with client:
        with pytest.raises(GraphStreamInterrupted, match="file changed"):
            async for chunk in download_file(client, "d1", "i1"):
                got += chunk
    assert got == pattern_bytes(0, 1000)
