"""An S3-compatible backend through aiobotocore (one well-kept async client).

Every PUT is create-only (`If-None-Match: *`, so two writers can never replace each other's object)
and carries an `x-amz-checksum-sha256` the server verifies before it stores the object. With Object
Lock, the PUT also carries the retention mode and date of that object. obstore was considered and
can do create-only PUTs and checksums, but it offers no way to send per-object Object Lock headers.

Removal deletes the object's current version by id, so space is reclaimed on versioned (Object
Lock) buckets instead of leaving a delete marker over a hidden version.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from m365vault.repository.backends.base import (
    AlreadyExists,
    BackendError,
    BackendProperties,
    Handle,
    Kind,
    NotFound,
    ObjectInfo,
    ObjectLocked,
    Payload,
    Retention,
    check_range,
    handle_from_path,
    joined,
)

LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Location:
        """`s3://bucket/prefix` plus connection options."""
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url}")
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url}")
        return cls(bucket=bucket, prefix=prefix.strip("/"), **kwargs)


class S3Backend:
    def __init__(self, location: S3Location, client: Any, stack: AsyncExitStack) -> None:
        self.location = location
        self._client = client
        self._stack = stack

    @classmethod
    async def connect(cls, location: S3Location) -> S3Backend:
        session = get_session()
        config = AioConfig(
            # We send our own SHA-256 checksum; botocore's default streaming CRC trailer is not
            # understood by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=16,
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=location.endpoint,
                region_name=location.region,
                aws_access_key_id=location.access_key,
                aws_secret_access_key=location.secret_key,
                config=config,
            )
        )
        return cls(location, client, stack)

    def _key(self, handle: Handle) -> str:
        return f"{self.location.prefix}/{handle.path()}" if self.location.prefix else handle.path()

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        extra: dict[str, Any] = {}
        if retention is not None:
            if retention.mode not in LOCK_MODES:
                raise BackendError(f"unknown Object Lock mode {retention.mode}", permanent=True)
            extra = {"ObjectLockMode": retention.mode, "ObjectLockRetainUntilDate": retention.until}
        data = joined(data)  # one body, for the checksum and the request
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        try:
            await self._client.put_object(
                Bucket=self.location.bucket,
                Key=self._key(handle),
                Body=data,
                IfNoneMatch="*",
                ChecksumSHA256=digest,
                **extra,
            )
        except (ClientError, BotoCoreError) as err:
            raise _classify(err, handle) from err

    async def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0:
            info = await self.stat(handle)
            check_range(info.size, offset, 0, handle)
            return b""
        ranged: dict[str, str] = {}
        if offset or length is not None:  # a Range on an empty object is refused, so whole reads send none
            ranged["Range"] = (
                f"bytes={offset}-" if length is None else f"bytes={offset}-{offset + length - 1}"
            )
        try:
            resp = await self._client.get_object(Bucket=self.location.bucket, Key=self._key(handle), **ranged)
            async with resp["Body"] as body:
                data: bytes = await body.read()
        except (ClientError, BotoCoreError) as err:
            if isinstance(err, ClientError) and _code(err) == "InvalidRange":
                raise BackendError(f"{handle}: short object", permanent=True) from err
            raise _classify(err, handle) from err
        if length is not None and len(data) != length:
            raise BackendError(f"{handle}: short object ({len(data)} of {length} bytes)", permanent=True)
        return data

    async def stat(self, handle: Handle) -> ObjectInfo:
        try:
            head = await self._client.head_object(Bucket=self.location.bucket, Key=self._key(handle))
        except (ClientError, BotoCoreError) as err:
            raise _classify(err, handle) from err
        return ObjectInfo(
            handle,
            int(head["ContentLength"]),
            head.get("LastModified"),
            head.get("ObjectLockRetainUntilDate"),
        )

    async def list(self, kind: Kind) -> AsyncIterator[ObjectInfo]:
        base = f"{self.location.prefix}/" if self.location.prefix else ""
        folder = base + ("config" if kind is Kind.CONFIG else f"{kind.value}/")
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.location.bucket, Prefix=folder):
                for obj in page.get("Contents", []):
                    handle = handle_from_path(obj["Key"][len(base) :])
                    if handle is not None and handle.kind is kind:
                        yield ObjectInfo(handle, int(obj["Size"]), obj.get("LastModified"))
        except (ClientError, BotoCoreError) as err:
            raise _classify(err, Handle(kind, "*")) from err

    async def remove(self, handle: Handle) -> None:
        key = self._key(handle)
        try:
            head = await self._client.head_object(Bucket=self.location.bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            raise _classify(err, handle) from err
        version = head.get("VersionId")
        retained = head.get("ObjectLockRetainUntilDate") or head.get("ObjectLockLegalHoldStatus") == "ON"
        try:
            if version and version != "null":
                await self._client.delete_object(Bucket=self.location.bucket, Key=key, VersionId=version)
            else:
                await self._client.delete_object(Bucket=self.location.bucket, Key=key)
        except ClientError as err:
            if retained and _code(err) == "AccessDenied":
                raise ObjectLocked(f"{handle} is under Object Lock retention") from err
            raise _classify(err, handle) from err
        except BotoCoreError as err:
            raise _classify(err, handle) from err

    def properties(self) -> BackendProperties:
        where = f"s3://{self.location.bucket}/{self.location.prefix}".rstrip("/")
        return BackendProperties(location=where, supports_object_lock=True)

    async def close(self) -> None:
        await self._stack.aclose()


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _classify(err: Exception, handle: Handle) -> BackendError:
    if not isinstance(err, ClientError):
        return BackendError(f"{handle}: {err}")  # connection trouble: transient
    code = _code(err)
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = f"{handle}: {code or status} {err.response.get('Error', {}).get('Message', '')}".strip()
    if code in ("NoSuchKey", "NotFound", "404") or status == 404:
        return NotFound(str(handle))
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
        return AlreadyExists(str(handle))
    return BackendError(message, permanent=400 <= status < 500 and status not in (408, 429))
