"""The storage seam: one small Protocol every backend implements.

A backend stores opaque, immutable objects under handles. What an implementation MUST guarantee:

* Atomic, create-only publication: `save` makes the whole object visible at once or not at all, and
  refuses (`AlreadyExists`) to replace an existing object. A crash mid-save leaves no object (or, on
  a local disk, a temp file that no listing shows).
* Durability: when `save` returns, the object survives a crash of this process and of the host.
* Read-after-write and list-after-write: an object whose `save` returned is visible to `load`,
  `stat` and `list` at once (S3 and local disks give this today).
* Errors are classified: `NotFound` for a missing object, `AlreadyExists`, `ObjectLocked` for an
  object under retention, other `BackendError`s are transient unless `permanent` is set.

`save` takes the object's bytes whole or as a list of parts that make it up in order: a pack is
tens of MiB of blob envelopes, and writing them one after another saves joining them (a copy of the
whole pack, ~1/5 of the write pipeline's CPU; bench_repository (b)).

Object Lock: `save(..., retention=Retention(mode, until))` asks the backend to protect the object
until then; backends that cannot lock raise `BackendError(permanent=True)` when asked to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

Payload = bytes | Sequence[bytes | bytearray]  # an object's bytes, whole or in parts


def joined(data: Payload) -> bytes:
    """The payload as one bytes object (for backends that need it contiguous)."""
    return data if isinstance(data, bytes) else b"".join(data)


def payload_size(data: Payload) -> int:
    return len(data) if isinstance(data, bytes) else sum(len(part) for part in data)


class Kind(StrEnum):
    """The kinds of object a repository stores; each lives under its own folder."""

    CONFIG = "config"
    KEYS = "keys"
    DATA = "data"
    INDEX = "index"
    LOCKS = "locks"
    MARKS = "marks"


@dataclass(frozen=True, order=True)
class Handle:
    """Names one object: its kind and its name (64 hex digits, or "config")."""

    kind: Kind
    name: str

    def path(self) -> str:
        """The object's path relative to the backend root (see docs/repository-format.md §2)."""
        if self.kind is Kind.CONFIG:
            return "config"
        if self.kind is Kind.DATA:
            return f"data/{self.name[:2]}/{self.name}"
        return f"{self.kind.value}/{self.name}"

    def __str__(self) -> str:
        return self.path()


@dataclass(frozen=True)
class Retention:
    """Object Lock for one object: mode (COMPLIANCE or GOVERNANCE) and the end of retention."""

    mode: str
    until: datetime


@dataclass(frozen=True)
class ObjectInfo:
    """What `stat` and `list` say of an object."""

    handle: Handle
    size: int
    modified: datetime | None = None
    retain_until: datetime | None = None  # Object Lock retention end, when the backend knows it


@dataclass(frozen=True)
class BackendProperties:
    """Static facts about a backend."""

    location: str  # for messages: a path or s3://bucket/prefix, never credentials
    supports_object_lock: bool


class BackendError(Exception):
    """A backend operation failed. `permanent` says retrying cannot help."""

    permanent: bool = False

    def __init__(self, message: str, *, permanent: bool | None = None) -> None:
        super().__init__(message)
        if permanent is not None:
            self.permanent = permanent


class NotFound(BackendError):
    permanent = True


class AlreadyExists(BackendError):
    permanent = True


class ObjectLocked(BackendError):
    """The object is under Object Lock retention and cannot be removed yet."""

    permanent = True


@runtime_checkable
class Backend(Protocol):
    """Stores immutable objects under handles. See the module docstring for the guarantees."""

    async def save(self, handle: Handle, data: Payload, *, retention: Retention | None = None) -> None:
        """Create the object atomically; `AlreadyExists` if it is there."""
        ...

    async def load(self, handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Read `length` bytes from `offset` (to the end when None). A short object raises
        `BackendError` (permanent) rather than returning fewer bytes than asked for."""
        ...

    async def stat(self, handle: Handle) -> ObjectInfo: ...

    def list(self, kind: Kind) -> AsyncIterator[ObjectInfo]:
        """Every object of a kind, in no particular order."""
        ...

    async def remove(self, handle: Handle) -> None:
        """Delete the object (`NotFound` if absent, `ObjectLocked` if retained)."""
        ...

    def properties(self) -> BackendProperties: ...

    async def close(self) -> None: ...


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, NotFound)


def is_permanent(err: BaseException) -> bool:
    return isinstance(err, BackendError) and err.permanent


def check_range(size: int, offset: int, length: int | None, handle: Handle) -> int:
    """Validate a read range against an object size; returns the end offset."""
    if offset < 0 or (length is not None and length < 0):
        raise BackendError(f"{handle}: negative range", permanent=True)
    end = size if length is None else offset + length
    if end > size:
        raise BackendError(f"{handle}: short object ({size} bytes, asked up to {end})", permanent=True)
    return end


def handle_from_path(path: str) -> Handle | None:
    """Inverse of `Handle.path` for listing; None for anything that is not a repository object."""
    if path == "config":
        return Handle(Kind.CONFIG, "config")
    parts = path.split("/")
    try:
        kind = Kind(parts[0])
    except ValueError:
        return None
    name = parts[-1]
    expected = 3 if kind is Kind.DATA else 2
    if len(parts) != expected or kind is Kind.CONFIG or not name or name.startswith("."):
        return None
    return Handle(kind, name)
