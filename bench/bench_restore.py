"""Restore throughput to the emulator (items/s, MiB/s), against backup throughput of the same items
measured in the same run.

The backup engine is not wired on this branch, so "backup" here is what the engine's per-item path
does: connector read (MIME or file download) + repository save + catalog record, page by page.
Restore is the restore layer's writers path (`MailRestorer`, `FileRestorer`): repository read +
Graph writes (MIME create, file upload), restoring to another folder so every item is written.
Both run against `m365vault emulator` as a real HTTPS process on this machine. Backup reads one item
at a time; restore writes four at a time per target (its own concurrency). Each phase also prints
this process's CPU seconds: when they are far below the wall time, the tenant side (the emulator's
MIME parsing and stored writes) is what bounds the phase, not m365vault.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from m365vault.catalog import (
    CatalogReader,
    CatalogWriter,
    EntryKind,
    EntryMetadata,
    ListingQuery,
    ObjectKind,
    PageWrite,
    VersionInfo,
    VersionWrite,
)
from m365vault.db import migrate
from m365vault.db.engine import make_engine
from m365vault.m365 import ClientSecret, GraphClient, Scope, TenantSettings, enumeration
from m365vault.m365 import content as graph_content
from m365vault.repository import KdfParams, Repository
from m365vault.repository.backends.location import open_backend
from m365vault.restore.content import ContentReader, RepositoryAccess, RepositoryPool
from m365vault.restore.writeback import (
    DriveTarget,
    FileOptions,
    FileRestorer,
    FileSource,
    MailOptions,
    MailRestorer,
    MailSource,
    MailTarget,
)

TENANT, CLIENT_ID, SECRET = "bench.onmicrosoft.com", "0a1b2c3d-0000-4000-8000-0000000be9c4", "bench-secret"
MIB = 1024 * 1024
MAX_MESSAGES = 120
MAX_FILE = 8 * MIB
MAX_DRIVE = 24 * MIB
PASSWORD = "bench-password"


def _cpu() -> float:
    """CPU seconds of this process: how much of a phase is our work rather than the tenant's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_emulator(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "m365vault",
        "emulator",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        SECRET,
        "--seed",
        "3",
        "--scale",
        "small",
    ]
    log = (state.parent / "emulator.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_emulator/health", verify=False, timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError("the emulator did not start")


async def _users(client: GraphClient) -> list[str]:
    found: list[str] = []
    async for page in enumeration.list_users(client):
        for user in page.items:
            if user.get("userType") == "Guest":
                continue
            if await enumeration.get_mailbox_settings(client, user["id"]) is None:
                continue
            if await enumeration.get_user_drive(client, user["id"]) is None:
                continue
            found.append(user["id"])
    return found[:2]


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


async def _backup(
    client: GraphClient, repo: Repository, writer: CatalogWriter, users: list[str]
) -> tuple[int, int]:
    """Read, save and record every message (up to MAX_MESSAGES) and every root file (<= MAX_FILE)."""
    items = size = 0
    now = datetime(2026, 3, 1, tzinfo=UTC)
    for uid in users:
        box = writer.ensure_object("org", "repo", ObjectKind.MAILBOX, uid, seen_at=now, name=uid)
        listed = await client.get_json(
            f"/users/{uid}/messages", scope=Scope.mailbox(uid), params={"$top": "200"}
        )
        upserts = []
        for m in listed["value"][: MAX_MESSAGES // len(users)]:
            mime = await _collect(graph_content.message_mime(client, uid, m["id"]))
            ref = await repo.save_item(mime)
            meta = EntryMetadata(subject=m.get("subject"), item_class="IPM.Note", size=len(mime))
            upserts.append(VersionWrite(m["id"], EntryKind.ITEM, None, meta, ref))
            items, size = items + 1, size + len(mime)
        await repo.flush()
        writer.apply_page(box.id, PageWrite(run_time=now, upserts=tuple(upserts)))
        drive = await enumeration.get_user_drive(client, uid)
        assert drive is not None
        od = writer.ensure_object("org", "repo", ObjectKind.ONEDRIVE, uid, seen_at=now, name=uid)
        files = []
        async for f in _drive_files(client, str(drive["id"])):
            ref = await repo.save_item(graph_content.download_file(client, drive["id"], f["id"]))
            meta = EntryMetadata(name=f["name"], size=f["size"])
            files.append(VersionWrite(f["id"], EntryKind.DOCUMENT, None, meta, ref))
            items, size = items + 1, size + f["size"]
        await repo.flush()
        writer.apply_page(od.id, PageWrite(run_time=now, upserts=tuple(files)))
    return items, size


async def _drive_files(client: GraphClient, drive_id: str) -> AsyncIterator[dict[str, Any]]:
    """Files of the drive up to MAX_FILE each and MAX_DRIVE in all, folders walked breadth first."""
    pending, total = ["root"], 0
    while pending:
        folder = pending.pop(0)
        children = await client.get_json(
            f"/drives/{drive_id}/items/{folder}/children", scope=Scope.sharepoint()
        )
        for child in children["value"]:
            if "folder" in child:
                pending.append(child["id"])
            elif "file" in child and child["size"] <= MAX_FILE and total + child["size"] <= MAX_DRIVE:
                total += child["size"]
                yield child


def _versions(
    reader: CatalogReader, kind: ObjectKind, entry: EntryKind
) -> list[tuple[str, list[VersionInfo]]]:
    out = []
    for obj in reader.objects("org", at=datetime(2027, 1, 1, tzinfo=UTC), kinds=[kind], limit=100):
        page = reader.list_versions(
            ListingQuery(obj.id, entry, datetime(2027, 1, 1, tzinfo=UTC)), limit=10_000
        )
        out.append((obj.external_id, page.items))
    return out


async def _restore(client: GraphClient, pool: RepositoryPool, reader: CatalogReader) -> tuple[int, int]:
    items = size = 0
    content = ContentReader(pool, "repo")
    for uid, versions in _versions(reader, ObjectKind.MAILBOX, EntryKind.ITEM):
        target = MailTarget(user=uid, folder="Bench restore", in_place=False)
        stats = await MailRestorer(client, content, target, MailOptions()).restore(
            [MailSource([], v) for v in versions]
        )
        assert stats.failed == 0, stats.problems
        items, size = items + stats.created, size + sum(v.metadata.size or 0 for v in versions)
    for uid, versions in _versions(reader, ObjectKind.ONEDRIVE, EntryKind.DOCUMENT):
        drive = await enumeration.get_user_drive(client, uid)
        assert drive is not None
        drive_target = DriveTarget(str(drive["id"]), folder="Bench restore", in_place=False)
        stats = await FileRestorer(client, content, drive_target, FileOptions()).restore(
            [FileSource([], v) for v in versions]
        )
        assert stats.failed == 0, stats.problems
        items, size = items + stats.created, size + sum(v.metadata.size or 0 for v in versions)
    return items, size


async def _run(base: str, cert: Path, tmp: Path) -> None:
    settings = TenantSettings(
        tenant=TENANT,
        client_id=CLIENT_ID,
        credential=ClientSecret(SECRET),
        graph_endpoint=base,
        authority_endpoint=base,
        verify=str(cert),
    )
    engine = make_engine(f"sqlite:///{tmp / 'catalog.db'}")
    migrate.upgrade(engine)
    repo_path = str(tmp / "repository")
    repo = await Repository.init(await open_backend(repo_path), PASSWORD, kdf=KdfParams.for_tests())
    async with GraphClient.for_tenant(settings) as client:
        users = await _users(client)
        start, cpu = time.monotonic(), _cpu()
        b_items, b_size = await _backup(client, repo, CatalogWriter(engine), users)
        backup_s, backup_cpu = time.monotonic() - start, _cpu() - cpu
        await repo.close()
        pool = RepositoryPool(lambda _id: RepositoryAccess(repo_path, PASSWORD))
        start, cpu = time.monotonic(), _cpu()
        r_items, r_size = await _restore(client, pool, CatalogReader(engine))
        restore_s, restore_cpu = time.monotonic() - start, _cpu() - cpu
        await pool.close()
    engine.dispose()
    print(
        f"backup  (read + save + record) {b_items:5d} items {b_size / MIB:7.1f} MiB in {backup_s:6.2f} s: "
        f"{b_items / backup_s:7.1f} items/s {b_size / MIB / backup_s:6.1f} MiB/s"
        f"  (our CPU {backup_cpu:5.2f} s)"
    )
    print(
        f"restore (read + Graph writes)  {r_items:5d} items {r_size / MIB:7.1f} MiB in {restore_s:6.2f} s: "
        f"{r_items / restore_s:7.1f} items/s {r_size / MIB / restore_s:6.1f} MiB/s"
        f"  (our CPU {restore_cpu:5.2f} s)"
    )
    print(
        f"restore / backup throughput: items {(r_items / restore_s) / (b_items / backup_s):.2f}, "
        f"bytes {(r_size / restore_s) / (b_size / backup_s):.2f}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        state = tmp / "emulator"
        process, base = _start_emulator(state)
        try:
            asyncio.run(_run(base, state / "emulator-cert.pem", tmp))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()


__all__: list[Any] = ["main"]
