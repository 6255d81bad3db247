"""How fast the emulator serves a `large` tenant, so engine benchmarks can show it is not their bottleneck.

Starts `m365vault emulator --scale large --http` as a real process and measures, with a few concurrent
async clients: start-up time, an empty admin request (the HTTP stack's own ceiling, the peer figure),
mail delta pages, MIME downloads, drive delta pages and file download throughput. Prints each figure
and its ratio against the empty request measured in the same run (and against Graph's own caps).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from tests.support.net import free_port
from tests.support.processes import ChildProcess

from m365vault.emulator import content

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "bench-app"
SECRET = "bench-secret"
CONCURRENCY = 4
MAILBOX_CAP = 10_000 / 600  # Graph: 10,000 requests per 10 minutes per app and mailbox (§6.2)
SHAREPOINT_CAP = 1_200 / 60  # 1,200 resource units a minute, 1 RU per delta page with a token (§6.3)
SECONDS = 4.0


async def _loop(
    work: Callable[[httpx.AsyncClient, int], Awaitable[int]], client: httpx.AsyncClient
) -> tuple[float, float]:
    """Run `work` from CONCURRENCY workers for SECONDS; (requests/s, bytes/s)."""
    done, volume = 0, 0
    deadline = time.monotonic() + SECONDS
    started = time.monotonic()

    async def worker(n: int) -> None:
        nonlocal done, volume
        i = n
        while time.monotonic() < deadline:
            volume += await work(client, i)
            done += 1
            i += CONCURRENCY

    await asyncio.gather(*[worker(n) for n in range(CONCURRENCY)])
    elapsed = time.monotonic() - started
    return done / elapsed, volume / elapsed


async def _run(base: str) -> None:
    graph = f"{base}/v1.0"
    async with httpx.AsyncClient(timeout=120) as anon:
        token = (
            await anon.post(
                f"{base}/{TENANT}/oauth2/v2.0/token",
                data={
                    "client_id": CLIENT_ID,
                    "client_secret": SECRET,
                    "grant_type": "client_credentials",
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
        ).json()["access_token"]
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=120, limits=limits
    ) as c:
        tenant = (await c.get(f"{base}/_emulator/tenant")).json()
        print(
            f"tenant: {tenant['baseMessages']:,} messages, {tenant['baseFileBytes'] / 1e9:.1f} GB of files, "
            f"{tenant['users']} users, {tenant['drives']} drives"
        )

        async def health(cl: httpx.AsyncClient, i: int) -> int:
            return len((await cl.get(f"{base}/_emulator/health")).content)

        peer_rps, _ = await _loop(health, c)
        print(f"empty admin request (HTTP stack ceiling): {peer_rps:,.0f} req/s")

        users = [
            u["id"]
            for u in (await c.get(f"{graph}/users", params={"$select": "id,mail", "$top": "999"})).json()[
                "value"
            ]
            if u.get("mail")
        ]
        links: dict[int, str] = {}
        message_ids: list[tuple[str, str]] = []
        items_seen = 0

        async def mail_delta(cl: httpx.AsyncClient, i: int) -> int:
            nonlocal items_seen
            slot = i % CONCURRENCY
            uid = users[(i // CONCURRENCY) % len(users)] if slot not in links else ""
            url = links.pop(slot, None) or f"{graph}/users/{uid}/mailFolders/inbox/messages/delta"
            r = await cl.get(url, headers={"Prefer": "odata.maxpagesize=100"})
            body = r.json()
            items_seen += len(body["value"])
            if len(message_ids) < 2000:
                owner = url.split("/users/")[1].split("/")[0]
                message_ids.extend((owner, m["id"]) for m in body["value"][:20])
            if "@odata.nextLink" in body:
                links[slot] = body["@odata.nextLink"]
            return len(r.content)

        rps, bps = await _loop(mail_delta, c)
        print(
            f"mail delta pages (100 items): {rps:,.0f} pages/s, {rps * 100:,.0f} items/s, "
            f"{bps / 1e6:.1f} MB/s "
            f"= {rps / peer_rps:.2f} x empty request = {rps / MAILBOX_CAP:.1f} x Graph's per-mailbox cap"
        )

        async def mime(cl: httpx.AsyncClient, i: int) -> int:
            owner, mid = message_ids[i % len(message_ids)]
            return len((await cl.get(f"{graph}/users/{owner}/messages/{mid}/$value")).content)

        rps, bps = await _loop(mime, c)
        print(
            f"MIME downloads ($value): {rps:,.0f} messages/s, {bps / 1e6:.1f} MB/s "
            f"= {rps / peer_rps:.2f} x empty request"
        )

        drives = [
            d["id"]
            for s in (await c.get(f"{graph}/sites/getAllSites")).json()["value"][:40]
            for d in (await c.get(f"{graph}/sites/{s['id']}/drives")).json()["value"]
        ]
        files: list[tuple[str, str, int]] = []
        drive_links: dict[int, str] = {}

        async def drive_delta(cl: httpx.AsyncClient, i: int) -> int:
            slot = i % CONCURRENCY
            url = (
                drive_links.pop(slot, None)
                or f"{graph}/drives/{drives[(i // CONCURRENCY) % len(drives)]}/root/delta"
            )
            r = await cl.get(url, params=None if "token=" in url else {"$top": "200"})
            body = r.json()
            url_drive = url.split("/drives/")[1].split("/")[0]
            files.extend((url_drive, f["id"], f["size"]) for f in body["value"] if "file" in f)
            if "@odata.nextLink" in body:
                drive_links[slot] = body["@odata.nextLink"]
            return len(r.content)

        rps, _ = await _loop(drive_delta, c)
        print(
            f"drive delta pages, cold (QuickXorHash of each file computed on first sight): {rps:,.1f} pages/s"
        )
        rps, _ = await _loop(drive_delta, c)
        print(
            f"drive delta pages, warm: {rps:,.0f} pages/s = {rps / peer_rps:.2f} x empty request "
            f"= {rps / SHAREPOINT_CAP:.1f} x SharePoint's per-tenant cap"
        )

        mid_files = [f for f in files if 100_000 < f[2] < 8_000_000] or files

        async def download(cl: httpx.AsyncClient, i: int) -> int:
            drive, iid, _ = mid_files[i % len(mid_files)]
            r = await cl.get(f"{graph}/drives/{drive}/items/{iid}/content", follow_redirects=True)
            return len(r.content)

        rps, bps = await _loop(download, c)
        started, size = time.monotonic(), 0
        for chunk in content.stream(1, "bench-peer", 200_000_000):
            size += len(chunk)
        gen = size / (time.monotonic() - started)
        print(
            f"file downloads (302 + body): {rps:,.0f} files/s, {bps / 1e6:.0f} MB/s "
            f"= {bps / gen:.2f} x the in-process byte generator ({gen / 1e6:.0f} MB/s)"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "m365vault",
            "emulator",
            "--http",
            "--port",
            str(port),
            "--state-dir",
            f"{tmp}/state",
            "--scale",
            "large",
            "--seed",
            "1",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            SECRET,
            "--tenant",
            TENANT,
        ]
        started = time.monotonic()
        proc = ChildProcess(argv, Path(tmp) / "emulator.log")
        try:
            proc.wait_http(f"http://127.0.0.1:{port}/_emulator/health", timeout=120)
            print(f"large tenant ready in {time.monotonic() - started:.2f} s (generation is lazy)")
            asyncio.run(_run(f"http://127.0.0.1:{port}"))
        finally:
            proc.terminate()


if __name__ == "__main__":
    main()
