"""File downloads against the emulator over real HTTPS with its faults: resumes with Range must
deliver the file byte for byte, and a file that changes mid-download must be refused, not spliced."""

from __future__ import annotations

import socket
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from m365vault.m365 import GraphClient, GraphStreamInterrupted, Scope
from m365vault.m365.client import RECEIVE_BUFFER
from m365vault.m365.content import download_file
from m365vault.m365.enumeration import get_user_drive
from m365vault.m365.settings import tls_verification
from m365vault.m365.writers import create_drive_folder, upload_file
from tests.m365.conftest import Emulator
from tests.m365.fakes import byte_stream, pattern_bytes
from tests.m365.test_emulator import connect, mailbox_users

pytestmark = pytest.mark.slow


class DownloadLog(httpx.AsyncHTTPTransport):
    """Real HTTP; keeps the Range header of every request to the download host, and can cut the
    body of one download answer after a given number of bytes (a connection dropped mid-file)."""

    def __init__(self, verify: Any) -> None:
        super().__init__(verify=verify)
        self.ranges: list[str | None] = []
        self.cut_after: int | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if "/_download/" not in request.url.path:
            return response
        self.ranges.append(request.headers.get("Range"))
        if self.cut_after is not None:
            limit, self.cut_after = self.cut_after, None
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=_Cut(response.stream, limit),  # type: ignore[arg-type]
                extensions=response.extensions,
            )
        return response

    @property
    def resumes(self) -> int:
        return sum(1 for r in self.ranges if r)


class _Cut(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.inner:
            if sent + len(chunk) >= self.limit:
                yield chunk[: self.limit - sent]
                raise httpx.ReadError("connection cut by the test")
            sent += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


async def scratch_file(client: GraphClient, size: int) -> tuple[str, dict[str, Any]]:
    user = (await mailbox_users(client))[0]
    drive = await get_user_drive(client, user)
    assert drive is not None
    root = await client.get_json(f"/drives/{drive['id']}/root", scope=Scope.sharepoint())
    folder = await create_drive_folder(client, drive["id"], root["id"], f"Downloads {uuid.uuid4().hex[:8]}")
    item = await upload_file(
        client, drive["id"], parent_id=folder["id"], name="big.bin", size=size, content=byte_stream(size)
    )
    return drive["id"], item


async def test_downloads_resume_through_dropped_connections(emu: Emulator) -> None:
    size = 3_000_000
    transport = DownloadLog(verify=tls_verification(str(emu.cert)))
    async with connect(emu, transport=transport) as client:
        drive_id, item = await scratch_file(client, size)
        emu.admin("POST", "config", {"faultRate": 0.4})
        # Download until the faults have forced three resumes (the fault sequence is seeded, not timed).
        for _ in range(40):
            data = b"".join([c async for c in download_file(client, drive_id, item["id"], max_resumes=20)])
            assert len(data) == size and data == pattern_bytes(0, size)
            if transport.resumes >= 3:
                break
        emu.admin("POST", "config", {"faultRate": 0.0})
    assert transport.resumes >= 3, f"no download was resumed: {transport.ranges}"


async def constant_stream(size: int, value: int) -> AsyncIterator[bytes]:
    for start in range(0, size, 1 << 20):
        yield bytes([value]) * min(1 << 20, size - start)


async def test_a_file_replaced_mid_download_is_refused_not_spliced(emu: Emulator) -> None:
    size = 3_000_000
    transport = DownloadLog(verify=tls_verification(str(emu.cert)))
    emu.admin("POST", "config", {"downloadUrlLifetimeSeconds": 60})
    try:
        async with connect(emu, transport=transport) as client:
            drive_id, item = await scratch_file(client, size)
            transport.cut_after = 1_000_000
            got = bytearray()
            stream = download_file(client, drive_id, item["id"], chunk_size=65536)
            with pytest.raises(GraphStreamInterrupted, match="file changed") as info:
                async for chunk in stream:
                    if not got:
                        # New content of the same size, and the download URL expires: the resume has
                        # to fetch a fresh URL, which serves the new version.
                        await upload_file(
                            client, drive_id, item_id=item["id"], size=size, content=constant_stream(size, 7)
                        )
                        emu.admin("POST", "config", {"clockOffsetSeconds": 120})
                    got += chunk
    finally:
        emu.admin("POST", "config", {"downloadUrlLifetimeSeconds": 3600, "clockOffsetSeconds": 0})
    assert 0 < len(got) == info.value.bytes_delivered < size
    assert got == pattern_bytes(0, len(got))  # only bytes of the version we started with
    assert transport.ranges[-1] == f"bytes={len(got)}-"


@pytest.mark.skipif(sys.platform != "linux", reason="Linux reports twice the buffer asked for")
async def test_graph_connections_keep_a_bounded_kernel_receive_buffer(emu: Emulator) -> None:
    # Autotuned, a fast download's buffer grows to megabytes that the event loop then reads into
    # memory in one go; the client asks for a fixed one instead.
    async with connect(emu) as client:
        drive_id, item = await scratch_file(client, 300_000)
        path = f"/drives/{drive_id}/items/{item['id']}/content"
        async with client.stream("GET", path, scope=Scope.sharepoint()) as response:
            sock = response.extensions["network_stream"].get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * RECEIVE_BUFFER
