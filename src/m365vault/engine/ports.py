"""The narrow interfaces the engine needs from the parts it joins.

The engine never imports the connector, the repository, the catalog or the configuration
database: it declares here the few calls it makes, and thin adapters (written where those parts
are wired together) implement them. Values crossing a port are plain frozen dataclasses.

Write order, the invariant everything here serves:
    content saved (`ContentSaver.save`) -> content durable (`ContentSaver.flush`)
    -> versions, gone-marks and the collection's delta token in ONE transaction
       (`VersionRecorder.record_page`; `record_pages` joins several pages' transactions)
A token is therefore never ahead of what the catalog holds, and what the catalog holds never
points at content that is not durable.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

# ---------------------------------------------------------------- planning: the tenant's directory


@dataclass(frozen=True)
class TenantUser:
    """A user as the planner needs it: which of its services exist."""

    id: str
    name: str  # userPrincipalName, shown in log items
    has_mailbox: bool = True
    has_archive_mailbox: bool = False
    has_onedrive: bool = True
    personal_site_id: str | None = None  # the user's personal (my) site, when provisioned
    archive_problem: str | None = None  # why the archive could not be looked up (a plan warning)
    onedrive: CollectionRef | None = None  # its drive, when listing the user already read it
    archive_id: str | None = None  # the archive's mailbox id, when listing the user found it


@dataclass(frozen=True)
class TenantGroup:
    """A Microsoft 365 group: it may own a group mailbox and a team site."""

    id: str
    name: str
    has_mailbox: bool = True
    site_id: str | None = None


@dataclass(frozen=True)
class TenantSite:
    id: str
    name: str  # URL or title, shown in log items
    is_personal: bool = False


class TenantDirectory(Protocol):
    """What the planner reads from the organization (the connector's enumeration).

    Listings raise on failure; they never return a partial or empty answer in place of an error,
    because the planner cannot tell "no users" from "could not list users".
    """

    def users(self) -> AsyncIterator[TenantUser]: ...

    def groups(self) -> AsyncIterator[TenantGroup]: ...

    def sites(self) -> AsyncIterator[TenantSite]:
        """Every site, personal sites included (flagged `is_personal`)."""
        ...

    def group_members(self, group_id: str) -> AsyncIterator[TenantUser]: ...

    async def user(self, user_id: str) -> TenantUser | None:
        """None when the user no longer exists."""
        ...

    async def group(self, group_id: str) -> TenantGroup | None: ...

    async def site(self, site_id: str) -> TenantSite | None: ...


# ---------------------------------------------------------------- what a task backs up


class ObjectKind(enum.Enum):
    """One backed-up object; each is one task. Values are stable (they travel in queue messages)."""

    MAILBOX = "mailbox"
    ARCHIVE_MAILBOX = "archiveMailbox"
    GROUP_MAILBOX = "groupMailbox"
    ONEDRIVE = "oneDrive"
    PERSONAL_SITE = "personalSite"
    SITE = "site"


@dataclass(frozen=True)
class BackupObject:
    """A mailbox, archive mailbox, OneDrive or site.

    `id` is the owner's id for user- and group-owned objects (mailboxes, OneDrive) and the site
    id for sites and personal sites, so the same site reached through a group, a Site item or
    PersonalSites is one object.
    """

    kind: ObjectKind
    id: str
    name: str = field(compare=False, default="")
    # Its collections when planning already read them (a OneDrive's drive), so its task does not
    # ask again; None: the source lists them.
    collections: tuple[CollectionRef, ...] | None = field(compare=False, default=None)
    # An archive mailbox's id when planning found it (its task then does not look it up again).
    archive_id: str | None = field(compare=False, default=None)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.id)

    def describe(self) -> str:
        """How log items name the object, e.g. `mailbox adele@contoso.com`."""
        words = {
            ObjectKind.MAILBOX: "mailbox",
            ObjectKind.ARCHIVE_MAILBOX: "archive mailbox",
            ObjectKind.GROUP_MAILBOX: "group mailbox",
            ObjectKind.ONEDRIVE: "OneDrive",
            ObjectKind.PERSONAL_SITE: "personal site",
            ObjectKind.SITE: "site",
        }
        return f"{words[self.kind]} {self.name or self.id}"


# ---------------------------------------------------------------- reading changes


@dataclass(frozen=True)
class CollectionRef:
    """One delta-tracked collection inside an object: a mail folder, calendar, contact folder,
    a document library (drive) or a list. `id` is stable across runs; `kind` and `name` are the
    connector's and are passed through to the recorder untouched."""

    id: str
    kind: str
    name: str = ""
    parent_id: str | None = None


@dataclass(frozen=True)
class ItemChange:
    """One entry of a delta page.

    `version_key` identifies the item's state (changeKey, cTag/eTag, or a file version id): two
    changes with the same id and version_key are the same version, so replays cost nothing.
    A connector that backs up file versions reports each unseen version as its own change, oldest
    first, all with the file's id.
    `read_ahead`: the source read the content with its page, under a content budget hold of its
    own (engine/budget.py); the engine takes none for the item.
    """

    item_id: str
    version_key: str = ""
    removed: bool = False
    has_content: bool = True
    metadata: Mapping[str, object] = field(default_factory=dict)
    read_ahead: bool = False


@dataclass(frozen=True)
class ChangePage:
    """A page of changes and the token that may be saved once the page is durably recorded.

    `token` None means "nothing new to save after this page". `final` marks the page that ends
    the round (its token is the deltaLink). `resync` marks pages of a full re-enumeration that
    replaces the saved state (410 / SyncStateNotFound / resyncRequired): after its final page,
    items the catalog holds that the round did not return are gone.
    """

    changes: Sequence[ItemChange]
    token: str | None
    final: bool = False
    resync: bool = False


class ContentGone(Exception):
    """Raised by `ChangeSource.content` when the item vanished after the delta listed it.

    The engine skips it; the next delta round reports the removal."""


class ItemUnreadable(Exception):
    """Raised by `ChangeSource.content` when the connector gave up on one item for a reason
    retrying will not fix (after its own retries: e.g. 403 on one file, a corrupt message).

    The engine skips the item so one bad item cannot block its object forever, and reports it
    by name in a `[Warning]` log item (the run ends Warning): the item is backed up again when it
    next changes. Transient errors must not be reported this way."""


class ServiceUnavailable(Exception):
    """Raised by a `ChangeSource` when the object's service cannot be read at all for a reason that
    is the tenant's configuration (a feature not enabled, a permission not granted), e.g. a 403 from
    Graph beta's archive API. The task ends Warning with this reason instead of Failed."""


class ChangeSource(Protocol):
    """What a worker reads from the tenant for one object (the connector's delta readers)."""

    async def collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        """The object's live collections. Raises on failure (never an empty list instead):
        a collection missing here is treated as deleted and its items marked gone."""
        ...

    def changes(
        self, obj: BackupObject, collection: CollectionRef, token: str | None
    ) -> AsyncIterator[ChangePage]:
        """Delta pages from `token` (None: a first, full round). Yields at least one page."""
        ...

    def content(
        self, obj: BackupObject, collection: CollectionRef, change: ItemChange
    ) -> AsyncIterator[bytes]:
        """The item's bytes (MIME, file content, list item fields), streamed."""
        ...


@runtime_checkable
class PrefetchingSource(ChangeSource, Protocol):
    """A source that can read the first page of many collections at once (Graph `$batch`)."""

    async def prefetch(self, obj: BackupObject, starts: Sequence[tuple[CollectionRef, str | None]]) -> None:
        """Read ahead the first page of `changes(obj, collection, token)` for each (collection,
        token); that call then starts from it. An error of one read surfaces in its `changes`."""
        ...


# ---------------------------------------------------------------- writing content


class ContentSaver(Protocol):
    """The repository as the engine needs it."""

    async def save(self, stream: AsyncIterator[bytes], size: int | None = None) -> str:
        """Store the stream; return a content reference. Not durable until `flush`. `size` is the
        content's size when the source knows it (the repository may wait before reading a big
        item rather than holding its start)."""
        ...

    async def flush(self) -> None:
        """After this returns, every reference handed out so far is durable."""
        ...


# ---------------------------------------------------------------- recording versions


@dataclass(frozen=True)
class ItemVersion:
    item_id: str
    version_key: str
    content_ref: str | None  # None for items without content (e.g. a folder entry)
    size: int
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class PageRecord:
    """Everything one page changes, applied in one transaction.

    `versions` and `gone` name disjoint items. Several versions of one item appear oldest first.
    `token` None keeps the saved token; `retire` forgets the collection's token (it was deleted).
    """

    collection: CollectionRef
    versions: Sequence[ItemVersion]
    gone: Sequence[str]
    token: str | None
    at: datetime
    retire: bool = False


class VersionRecorder(Protocol):
    """The catalog as the engine needs it, for one organization."""

    async def load_token(self, obj: BackupObject, collection_id: str) -> str | None: ...

    async def known_collections(self, obj: BackupObject) -> Sequence[CollectionRef]:
        """Collections that hold a token or live items (to find the ones deleted since)."""
        ...

    async def current_versions(
        self, obj: BackupObject, collection_id: str, item_ids: Sequence[str]
    ) -> Mapping[str, str]:
        """item id -> version_key of the live version, for those of `item_ids` that are live."""
        ...

    async def live_ids(self, obj: BackupObject, collection_id: str) -> set[str]:
        """Every live item of the collection (used only after a resync round)."""
        ...

    async def record_page(self, obj: BackupObject, page: PageRecord) -> None:
        """Apply versions, gone-marks and token atomically: all of it or none of it.
        Idempotent for a version already recorded with the same version_key."""
        ...

    async def record_pages(self, obj: BackupObject, pages: Sequence[PageRecord]) -> None:
        """`record_page` for several pages (of different collections) in one transaction."""
        ...


# ---------------------------------------------------------------- reporting the session


class LogStatus(enum.Enum):
    SUCCESS = "Success"
    WARNING = "Warning"
    FAILED = "Failed"


@dataclass(frozen=True)
class LogItem:
    """A job session log item; `title` starts with `[Success]`, `[Warning]` or `[Failed]`."""

    status: LogStatus
    title: str
    creation_time: datetime
    end_time: datetime


class SessionStatus(enum.Enum):
    RUNNING = "Running"
    SUCCESS = "Success"
    WARNING = "Warning"
    FAILED = "Failed"
    STOPPED = "Stopped"


class Bottleneck(enum.Enum):
    NA = "NA"
    SOURCE = "Source"
    TARGET = "Target"


@dataclass(frozen=True)
class SessionStatistics:
    """The v3 job session `statistics` object (field names map 1:1 to the wire's camelCase)."""

    processing_rate_bytes_ps: int = 0
    processing_rate_items_ps: int = 0
    read_rate_bytes_ps: int = 0
    write_rate_bytes_ps: int = 0
    transferred_data_bytes: int = 0
    processed_objects: int = 0  # items processed, as v3 reports it (see statistics.py)
    bottleneck: Bottleneck = Bottleneck.NA


class SessionReporter(Protocol):
    """The job session row and its log, as the engine updates them while it runs."""

    async def log(self, item: LogItem) -> None: ...

    async def progress(self, progress: int, statistics: SessionStatistics) -> None:
        """`progress` = objects processed so far."""
        ...

    async def finish(self, status: SessionStatus, end_time: datetime) -> None: ...
