"""Fixtures of the repository suite: every backend kind, and repositories checked at teardown."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiobotocore.session import get_session

from m365vault.repository import KdfParams, Repository, RepositoryConfig
from m365vault.repository.backends.base import Backend
from m365vault.repository.backends.local import LocalBackend
from m365vault.repository.backends.memory import MemoryBackend
from m365vault.repository.backends.s3 import S3Backend, S3Location
from m365vault.repository.chunker import ChunkerParams
from tests.support.seaweed import S3Server

PASSWORD = "correct horse battery staple"
# Small sizes so a few hundred KB exercise chunking, manifests and many packs.
SMALL = RepositoryConfig(
    chunker=ChunkerParams(min_size=4 * 1024, avg_size=16 * 1024, max_size=64 * 1024),
    small_item_limit=32 * 1024,
    pack_size=256 * 1024,
)


async def make_bucket(server: S3Server, *, object_lock: bool = False) -> str:
    bucket = f"t-{secrets.token_hex(6)}"
    async with get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    ) as client:
        await client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
    return bucket


async def connect_s3(server: S3Server, bucket: str, prefix: str = "repo") -> S3Backend:
    return await S3Backend.connect(
        S3Location(bucket, prefix, server.endpoint, server.region, server.access_key, server.secret_key)
    )


@pytest.fixture
def s3_factory(s3_server: S3Server) -> Callable[..., Awaitable[S3Backend]]:
    async def factory(*, object_lock: bool = False) -> S3Backend:
        return await connect_s3(s3_server, await make_bucket(s3_server, object_lock=object_lock))

    return factory


@pytest.fixture(params=["memory", "local", pytest.param("s3", marks=pytest.mark.s3)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The same test against every backend; S3 is a real SeaweedFS server, a new bucket per test."""
    made: Backend
    if request.param == "memory":
        made = MemoryBackend()
    elif request.param == "local":
        made = LocalBackend(tmp_path / "repo")
    else:
        server = request.getfixturevalue("s3_server")
        made = await connect_s3(server, await make_bucket(server))
    try:
        yield made
    finally:
        await made.close()


async def assert_check_passes(backend: Backend, *, read_data: bool = True) -> None:
    repo = await Repository.open(backend, PASSWORD)
    try:
        report = await repo.check(read_data=read_data)
        assert report.ok, [(p.object, p.message) for p in report.errors]
    finally:
        await repo.close()


@pytest.fixture
async def mem_repo() -> AsyncIterator[Repository]:
    """A fresh memory repository; the test ends by running check --read-data on it."""
    backend = MemoryBackend()
    repo = await Repository.init(backend, PASSWORD, kdf=KdfParams.for_tests(), config=SMALL)
    yield repo
    await repo.close()
    await assert_check_passes(backend)
