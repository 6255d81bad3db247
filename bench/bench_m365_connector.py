"""Connector overheads, each against a peer measured in the same run.

1. QuickXorHash (our folding implementation) vs hashlib.sha256 over the same bytes.
2. Small Graph GETs through GraphClient (token, lane, retry bookkeeping) vs bare httpx.AsyncClient,
   both on an in-process MockTransport so only client-side cost is measured.
3. A streamed file download through download_file (302 + Range bookkeeping) vs a bare httpx stream,
   in 64 KiB pieces as a socket delivers them; no bytes are copied, so this is per-chunk overhead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import httpx

from m365vault.m365.client import GraphClient
from m365vault.m365.content import download_file
from m365vault.m365.hashes import QuickXorHash
from m365vault.m365.throttle import LimitPolicy, Scope

BASE = "https://graph.microsoft.com/v1.0"
FILE_SIZE = 256 << 20
CHUNK = 1 << 20
NET_CHUNK = 64 << 10  # what a socket read typically delivers: per-chunk overhead is what we measure
_BLOB = os.urandom(NET_CHUNK)


class _Tokens:
    async def token(self) -> str:
        return "t"

    def invalidate(self, token: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def _body() -> object:
    for _ in range(FILE_SIZE // NET_CHUNK):
        yield _BLOB


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/content"):
        return httpx.Response(302, headers={"Location": "https://dl.example/file?tempauth=x"})
    if request.url.host == "dl.example":
        return httpx.Response(200, headers={"Content-Length": str(FILE_SIZE)}, content=_body())  # type: ignore[arg-type]
    return httpx.Response(200, json={"id": "x"})


def bench_hash() -> None:
    data = os.urandom(128 << 20)
    t = time.perf_counter()
    h = QuickXorHash()
    for i in range(0, len(data), CHUNK):
        h.update(data[i : i + CHUNK])
    h.digest()
    qxh = len(data) / (time.perf_counter() - t) / 1e6
    t = time.perf_counter()
    s = hashlib.sha256()
    for i in range(0, len(data), CHUNK):
        s.update(data[i : i + CHUNK])
    sha = len(data) / (time.perf_counter() - t) / 1e6
    print(f"quickxorhash {qxh:,.0f} MB/s | sha256 {sha:,.0f} MB/s | ratio {qxh / sha:.2f}")


async def bench_requests(n: int = 3000) -> None:
    limits = LimitPolicy(directory_requests_per_second=1e9, directory_burst=1e9)
    async with GraphClient(BASE, _Tokens(), transport=httpx.MockTransport(_handler), limits=limits) as client:
        t = time.perf_counter()
        for i in range(n):
            await client.get_json(f"/users/u{i}", scope=Scope.directory())
        ours = n / (time.perf_counter() - t)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_handler)) as bare:
        t = time.perf_counter()
        for i in range(n):
            (await bare.get(f"{BASE}/users/u{i}", headers={"Authorization": "Bearer t"})).json()
        peer = n / (time.perf_counter() - t)
    print(f"GET via GraphClient {ours:,.0f}/s | bare httpx {peer:,.0f}/s | ratio {ours / peer:.2f}")


async def bench_download() -> None:
    limits = LimitPolicy(sharepoint_resource_units_per_minute=1e9)
    async with GraphClient(BASE, _Tokens(), transport=httpx.MockTransport(_handler), limits=limits) as client:
        t = time.perf_counter()
        total = 0
        async for chunk in download_file(client, "d", "i"):
            total += len(chunk)
        ours = total / (time.perf_counter() - t) / 1e6
    async with httpx.AsyncClient(transport=httpx.MockTransport(_handler)) as bare:
        t = time.perf_counter()
        total = 0
        async with bare.stream("GET", "https://dl.example/file") as response:
            async for chunk in response.aiter_bytes():
                total += len(chunk)
        peer = total / (time.perf_counter() - t) / 1e6
    print(f"download via connector {ours:,.0f} MB/s | bare httpx {peer:,.0f} MB/s | ratio {ours / peer:.2f}")


def main() -> None:
    bench_hash()
    asyncio.run(bench_requests())
    asyncio.run(bench_download())


if __name__ == "__main__":
    main()
