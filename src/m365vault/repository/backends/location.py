"""Open a backend from a location string: a directory path or `s3://bucket/prefix`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from m365vault.repository.backends.base import Backend
from m365vault.repository.backends.local import LocalBackend
from m365vault.repository.backends.retrying import RetryingBackend
from m365vault.repository.backends.s3 import S3Backend, S3Location


@dataclass(frozen=True)
class S3Options:
    """Connection settings; each falls back to the usual AWS environment variable."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None

    def resolved(self) -> S3Options:
        env = os.environ
        return S3Options(
            endpoint=self.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            access_key=self.access_key or env.get("AWS_ACCESS_KEY_ID"),
            secret_key=self.secret_key or env.get("AWS_SECRET_ACCESS_KEY"),
            region=self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )


async def open_backend(location: str, s3: S3Options | None = None, *, retrying: bool = True) -> Backend:
    backend: Backend
    if location.startswith("s3://"):
        opts = (s3 or S3Options()).resolved()
        backend = await S3Backend.connect(
            S3Location.from_url(
                location,
                endpoint=opts.endpoint,
                region=opts.region or "us-east-1",
                access_key=opts.access_key,
                secret_key=opts.secret_key,
            )
        )
    elif "://" in location:
        raise ValueError(
            f"unsupported repository location {location!r}: use a directory or s3://bucket/prefix"
        )
    else:
        backend = LocalBackend(Path(location))
    return RetryingBackend(backend) if retrying else backend
