"""The catalog's vocabulary: kinds of objects and entries, and the records going in and out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ObjectKind(enum.StrEnum):
    """A backed-up unit: one backup task reads one of these."""

    MAILBOX = "mailbox"
    ARCHIVE = "archive"  # the in-place archive of a mailbox; same external id as the mailbox
    ONEDRIVE = "onedrive"
    SITE = "site"


class EntryKind(enum.StrEnum):
    """What an entry inside an object is, in the explore trees' own words (one per listing)."""

    FOLDER = "folder"  # mail folder, OneDrive folder, SharePoint list or library folder
    LIST = "list"  # SharePoint list
    LIBRARY = "library"  # SharePoint document library
    ITEM = "item"  # mail item (message, appointment, contact...), SharePoint list item
    DOCUMENT = "document"  # OneDrive or SharePoint library file
    ATTACHMENT = "attachment"  # a file posted to a group conversation, child of its thread item

    @property
    def is_container(self) -> bool:
        return self in (EntryKind.FOLDER, EntryKind.LIST, EntryKind.LIBRARY)


class EndReason(enum.IntEnum):
    """Why a version stopped existing (stored as a small integer)."""

    OPEN = 0
    REPLACED = 1
    DELETED = 2
    MOVED = 3


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A catalog object's row id with its identity, as returned by `CatalogWriter.ensure_object`."""

    id: int
    organization_id: str
    repository_id: str
    kind: ObjectKind
    external_id: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    id: int
    organization_id: str
    repository_id: str
    kind: ObjectKind
    external_id: str
    name: str
    email: str | None
    url: str | None
    parent_external_id: str | None
    extras: dict[str, Any] | None
    first_seen: datetime
    gone_at: datetime | None
    last_change_at: datetime


@dataclass(frozen=True, slots=True)
class EntryMetadata:
    """What the backup knows of one state of an entry. Every field takes part in change detection:
    a version is replaced when any of them, its content reference or its parent differs."""

    name: str | None = None  # folder / file / list name, or the item's display name
    path: str | None = None
    item_class: str | None = None  # IPM.Note, IPM.Appointment...; folder type for mail folders
    subject: str | None = None
    sender: str | None = None
    to: tuple[str, ...] | None = None
    cc: tuple[str, ...] | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None
    modified_at: datetime | None = None
    size: int | None = None
    # Per-class fields (organizer, attendees, location, start, end, createdBy, version...). Values
    # must be JSON-serialisable; datetimes should be given as ISO strings.
    extras: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class VersionWrite:
    """One entry as a delta page describes it: upserted at the page's run time."""

    external_id: str
    kind: EntryKind
    parent_external_id: str | None  # None: at the object's root
    metadata: EntryMetadata = field(default_factory=EntryMetadata)
    content_ref: str | None = None


@dataclass(frozen=True, slots=True)
class GoneWrite:
    """An entry that stopped existing (deleted) or left the backed-up scope (moved out).

    `with_contents`: a container whose contents go with it (a deleted mail folder: Graph reports
    the folder, not each message in it); everything live beneath it closes at the same time.
    """

    external_id: str
    reason: EndReason = EndReason.DELETED
    with_contents: bool = False


@dataclass(frozen=True, slots=True)
class PageWrite:
    """A whole delta page, applied in one transaction together with the delta token that follows it.

    `delta_token` is (collection, token): the collection names what the token belongs to (a mail
    folder's external id, "drive", a list id...) and is free-form for the catalog.
    """

    run_time: datetime
    upserts: tuple[VersionWrite, ...] = ()
    gones: tuple[GoneWrite, ...] = ()
    delta_token: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class PageStats:
    created: int = 0  # versions of entries not live before
    replaced: int = 0  # versions that closed a previous live version
    updated_in_place: int = 0  # changes within the same run: the run's version was rewritten
    unchanged: int = 0
    gone: int = 0


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version as queries return it."""

    version_id: int
    entry_id: int
    object_id: int
    external_id: str
    parent_external_id: str | None
    kind: EntryKind
    first_seen: datetime
    gone_at: datetime | None
    end_reason: EndReason
    content_ref: str | None
    metadata: EntryMetadata

    @property
    def is_deleted(self) -> bool:
        return self.end_reason is EndReason.DELETED


@dataclass(frozen=True, slots=True)
class RestorePoint:
    object_id: int
    run_time: datetime
    job_session_id: str | None
