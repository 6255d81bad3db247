"""The storage engine: chunking, content ids, compression, encryption, pack files, index, check.

Knows nothing of Microsoft 365. The on-disk format is specified in docs/repository-format.md and
this package follows it. What it owns: turning item byte streams into deduplicated, compressed,
encrypted blobs in immutable packs, and back. Invariants: objects are written create-only and never
rewritten; packs before the index that lists them, the index before `flush()` returns; CPU work runs
off the event loop; memory is bounded by chunk, in-flight blob and pack sizes, never by item size.

Public surface (other layers import only these names):
    Repository.init / Repository.open, save_item, open_item, read_item, flush, check, prune, stats
    open_backend (path or s3:// URL), ObjectLockPolicy, RepositoryConfig, KdfParams, errors.
"""

from m365vault.repository.check import CheckProblem, CheckReport
from m365vault.repository.config import ObjectLockPolicy, RepositoryConfig
from m365vault.repository.errors import (
    IntegrityError,
    RepositoryError,
    UnknownRef,
    UnsupportedFormat,
    WrongPassword,
)
from m365vault.repository.keyfile import KdfParams
from m365vault.repository.prune import PruneReport, SafetyParameters
from m365vault.repository.repo import Repository, RepositoryStats, parse_ref

__all__ = [
    "CheckProblem",
    "CheckReport",
    "IntegrityError",
    "KdfParams",
    "ObjectLockPolicy",
    "PruneReport",
    "Repository",
    "RepositoryConfig",
    "RepositoryError",
    "RepositoryStats",
    "SafetyParameters",
    "UnknownRef",
    "UnsupportedFormat",
    "WrongPassword",
    "parse_ref",
]
