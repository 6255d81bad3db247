"""Crash safety: SIGKILL writers at random instants, then check passes and nothing durable is lost."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from m365vault.clock import FakeClock, utcnow
from m365vault.repository import KdfParams, Repository
from m365vault.repository.backends.base import BackendError, Handle, Kind, Payload
from m365vault.repository.backends.local import LocalBackend
from m365vault.repository.errors import RepositoryError
from tests.repository.conftest import PASSWORD, SMALL

ROOT = Path(__file__).resolve().parents[2]


class Writer:
    def __init__(self, path: Path, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.repository.crash_writer", str(path), str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.durable: dict[str, str] = {}
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if parts == ["ready"]:
                self.ready.set()
            elif len(parts) == 3 and parts[0] == "durable":
                self.durable[parts[1]] = parts[2]

    def kill(self) -> dict[str, str]:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.durable


async def verify(path: Path, durable: dict[str, str]) -> None:
    async with await Repository.open(LocalBackend(path), PASSWORD) as repo:
        report = await repo.check(read_data=True, refs=list(durable))
        assert report.ok, [(p.object, p.message) for p in report.errors]
        for ref, digest in durable.items():
            assert hashlib.sha256(await repo.read_item(ref)).hexdigest() == digest


async def create(path: Path) -> None:
    repo = await Repository.init(LocalBackend(path), PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    await repo.close()


def test_sigkill_at_random_points_loses_nothing_durable(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"crash test seed {seed}")
    rnd = random.Random(seed)
    asyncio.run(create(tmp_path))
    durable: dict[str, str] = {}
    for _round in range(3):
        # Two writers at once on the same repository, killed at different random instants.
        writers = [Writer(tmp_path, rnd.randrange(2**31)) for _ in range(2)]
        for w in writers:
            assert w.ready.wait(timeout=60)
        for w in writers:
            time.sleep(rnd.uniform(0.05, 0.6))
            durable.update(w.kill())
        asyncio.run(verify(tmp_path, durable))
    assert durable, "the writers never reported anything durable: the test proved nothing"
    temps = len(list(tmp_path.rglob(".tmp-*")))
    asyncio.run(collect_garbage(tmp_path, temps))
    assert not list(tmp_path.rglob(".tmp-*"))


async def collect_garbage(path: Path, temps: int) -> None:
    """Prune finds what the kills left: unindexed packs (marked) and temp files (removed)."""
    clock = FakeClock(utcnow() + timedelta(hours=2), step=timedelta(seconds=1))  # past the grace period
    async with await Repository.open(LocalBackend(path), PASSWORD, clock=clock) as repo:
        report = await repo.prune(None)
        assert report.temp_files_removed == temps
    await verify(path, {})


class DiesMidPack(LocalBackend):
    """Once `dying` is set, the next pack write stops halfway, as a killed writer's would: part of
    the pack sits in a temp file and nothing is published."""

    dying = False

    def _save(self, handle: Handle, data: Payload) -> None:
        if handle.kind is not Kind.DATA or not self.dying:
            return super()._save(handle, data)
        whole = data if isinstance(data, bytes) else b"".join(data)
        folder = (self.root / handle.path()).parent
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f".tmp-{handle.name[:16]}").write_bytes(whole[: len(whole) // 2])
        raise BackendError("killed mid-pack", permanent=True)


async def test_a_pack_cut_off_mid_write_leaves_garbage_not_damage(tmp_path: Path) -> None:
    backend = DiesMidPack(tmp_path)
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    kept = [os.urandom(3000) + b"kept %d" % i for i in range(100)] + [os.urandom(200_000)]
    refs = [await repo.save_item(item) for item in kept]
    await repo.flush()
    backend.dying = True
    with pytest.raises(RepositoryError):
        for i in range(400):  # several packs' worth: one of them dies
            await repo.save_item(os.urandom(3000) + b"lost %d" % i)
        await repo.flush()
    await repo.close()
    partial = await asyncio.to_thread(lambda: list(tmp_path.rglob(".tmp-*")))
    assert partial, "the simulated crash left no partial pack"
    await verify(
        tmp_path, {ref: hashlib.sha256(item).hexdigest() for ref, item in zip(refs, kept, strict=True)}
    )
