"""The item-version catalog: every version of every backed-up item, with the time it was first
seen and the time it stopped existing; point-in-time, show-deleted and all-versions queries.

Owns: objects (mailbox, archive, OneDrive, site), their entries (folders, lists, libraries, items,
documents) and each entry's versions; delta tokens (saved in the page's own transaction); restore
points; the retention pass and the content references it releases.

Must not: read or write repository content (it only keeps the opaque references the repository hands
out), or know Graph's wire formats (the engine translates).

Invariants: the versions of one entry never overlap in time, and a version's interval
[first_seen, gone_at) is only ever closed, never moved, except by a rewrite within the same run.

Tables are declared in `m365vault.db.catalog_tables` (schema lives with the migrations); the logic
lives here: `writer` (backup engine side), `reader` (explore side), `retention` and `refs` (repository
maintenance side).
"""

from m365vault.catalog.errors import CatalogError, InvalidPolicy, OutOfOrderWrite, UnknownObject
from m365vault.catalog.reader import (
    ANY_PARENT,
    CatalogReader,
    ListingQuery,
    PageCursors,
    PageKey,
    VersionPage,
)
from m365vault.catalog.refs import ContentRefs
from m365vault.catalog.retention import RetentionPass, RetentionResult
from m365vault.catalog.retention_policy import (
    RetentionFrequencyType,
    RetentionPeriodType,
    RetentionPolicy,
    RetentionType,
)
from m365vault.catalog.types import (
    EndReason,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    ObjectInfo,
    ObjectKind,
    ObjectRef,
    PageStats,
    PageWrite,
    RestorePoint,
    VersionInfo,
    VersionWrite,
)
from m365vault.catalog.writer import CatalogWriter

__all__ = [
    "ANY_PARENT",
    "CatalogError",
    "CatalogReader",
    "CatalogWriter",
    "ContentRefs",
    "EndReason",
    "EntryKind",
    "EntryMetadata",
    "GoneWrite",
    "InvalidPolicy",
    "ListingQuery",
    "ObjectInfo",
    "ObjectKind",
    "ObjectRef",
    "OutOfOrderWrite",
    "PageCursors",
    "PageKey",
    "PageStats",
    "PageWrite",
    "RestorePoint",
    "RetentionFrequencyType",
    "RetentionPass",
    "RetentionPeriodType",
    "RetentionPolicy",
    "RetentionResult",
    "RetentionType",
    "UnknownObject",
    "VersionInfo",
    "VersionPage",
    "VersionWrite",
]
