"""A writer process for the crash test: saves items forever, printing each ref once it is durable.

Run as `python -m tests.repository.crash_writer DIR SEED`; the test kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys

from m365vault.repository import Repository
from m365vault.repository.backends.local import LocalBackend
from tests.repository.conftest import PASSWORD


async def main(path: str, seed: int) -> None:
    rnd = random.Random(seed)
    repo = await Repository.open(LocalBackend(path), PASSWORD)
    print("ready", flush=True)
    pending: list[tuple[str, str]] = []
    while True:
        size = rnd.choice([50, 2_000, 20_000, 90_000])
        data = rnd.randbytes(size // 2) + bytes(size - size // 2)
        ref = await repo.save_item(data)
        pending.append((ref, hashlib.sha256(data).hexdigest()))
        await asyncio.sleep(0.005)  # keep the volume small: the test is about instants, not bulk
        if rnd.random() < 0.3:
            await repo.flush()
            for ref, digest in pending:
                print(f"durable {ref} {digest}", flush=True)
            pending.clear()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
