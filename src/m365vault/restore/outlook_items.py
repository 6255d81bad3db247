"""Restore of calendar items and contacts through Graph's JSON routes.

What the backup holds for them is the item's Graph JSON as read (the engine's mailbox source
stores events and contacts that way), so restore sends that JSON back to `POST .../events` or
`POST .../contacts` with the properties Graph computes or refuses on create left out. A restored
item is a new item (Exchange ids are not reusable): the original, when it still exists, stays.

Calendar items are backed up as calendarView returns them: single events, and the occurrences and
exceptions of a series one by one (not its master), so a series comes back as single events at the
same times.

In place, the original's state decides as for mail: gone -> "deleted" (restored with
deletedItems), a different changeKey / lastModifiedDateTime -> "changed" (restored with
changedItems), equal -> skipped. Elsewhere (another mailbox) every item is written: events into
the target's default calendar, contacts into its default contacts folder or, with a folder name,
into the contact folder of that name (found, else created).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from m365vault.catalog import VersionInfo
from m365vault.m365 import GraphClient, GraphNotFound, Scope, writers
from m365vault.m365.client import segment
from m365vault.restore.content import ContentReader
from m365vault.restore.writeback import MailOptions, MailTarget, RestoreStats, bounded

APPOINTMENT = "ipm.appointment"
CONTACT = "ipm.contact"

# Properties Graph sets itself (or refuses on create); everything else of the backed-up item goes back.
READ_ONLY = frozenset(
    {
        "id",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "parentFolderId",
        "iCalUId",
        "uid",
        "webLink",
        "seriesMasterId",
        "originalStart",
        "occurrenceId",
        "isOrganizer",
        "responseStatus",
        "onlineMeetingUrl",
        "onlineMeeting",
        "type",
        "cancelledOccurrences",
        "exceptionOccurrences",
        "calendar",
        "instances",
        "attachments",
        "extensions",
        "singleValueExtendedProperties",
        "multiValueExtendedProperties",
        "photo",
        "organizer",
        "bodyPreview",
        "hasAttachments",
        "isCancelled",
    }
)


def restorable_kind(item_class: str | None) -> str | None:
    """ "event" or "contact" for the classes restored here, else None."""
    cls = (item_class or "").casefold()
    if cls.startswith(APPOINTMENT):
        return "event"
    if cls.startswith(CONTACT) and not cls.startswith("ipm.contact.distlist"):
        return "contact"
    return None


def create_body(backed_up: dict[str, Any]) -> dict[str, Any]:
    """The backed-up item's JSON without what Graph computes: the body of a create."""
    return {
        key: value
        for key, value in backed_up.items()
        if key not in READ_ONLY and "@odata." not in key and not key.startswith("@")
    }


def parse_item(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"the backed-up content of {what} is not the item's Graph JSON") from err
    if not isinstance(value, dict):
        raise ValueError(f"the backed-up content of {what} is not the item's Graph JSON")
    return value


@dataclass(frozen=True)
class OutlookSource:
    path: list[str]
    version: VersionInfo


class OutlookItemRestorer:
    """Events and contacts of one source mailbox to one target mailbox."""

    def __init__(
        self, client: GraphClient, reader: ContentReader, target: MailTarget, options: MailOptions
    ) -> None:
        self._client = client
        self._reader = reader
        self._target = target
        self._options = options
        self._contact_folder: str | None = None
        self._folder_lock = asyncio.Lock()
        self.stats = RestoreStats()

    async def restore(self, items: list[OutlookSource]) -> RestoreStats:
        await bounded(
            items, self._one, lambda s: s.version.metadata.subject or s.version.external_id, self.stats
        )
        return self.stats

    def _user_path(self, *parts: str) -> str:
        return "/".join([f"/users/{segment(self._target.user)}", *(segment(p) for p in parts)])

    async def _one(self, source: OutlookSource) -> None:
        version = source.version
        kind = restorable_kind(version.metadata.item_class)
        if kind is None:
            raise ValueError(f"restoring {version.metadata.item_class} items is not supported")
        if version.content_ref is None:
            self.stats.skipped += 1
            return
        what = version.metadata.subject or version.external_id
        backed_up = parse_item(await self._reader.read(version), what)
        collection = "events" if kind == "event" else "contacts"
        in_place = self._target.in_place and self._target.folder is None
        if in_place:
            state = await self._original_state(collection, version.external_id, backed_up)
            if (
                state == "same"
                or (state == "changed" and not self._options.changed_items)
                or (state == "deleted" and not self._options.deleted_items)
            ):
                self.stats.skipped += 1
                return
        body = create_body(backed_up)
        scope = Scope.mailbox(self._target.user)
        if kind == "contact" and in_place and version.parent_external_id:
            try:  # back into its own contact folder while that exists
                own = self._user_path("contactFolders", version.parent_external_id, "contacts")
                await self._client.send_json("POST", own, body, scope=scope)
                self.stats.created += 1
                return
            except GraphNotFound:
                pass  # the folder went: the default contacts folder
        await self._client.send_json("POST", await self._destination(kind), body, scope=scope)
        self.stats.created += 1

    async def _original_state(self, collection: str, item_id: str, backed_up: dict[str, Any]) -> str:
        try:
            current = await self._client.get_json(
                self._user_path(collection, item_id),
                scope=Scope.mailbox(self._target.user),
                headers=writers.IMMUTABLE_IDS,
            )
        except GraphNotFound:
            return "deleted"
        for key in ("changeKey", "lastModifiedDateTime"):
            if backed_up.get(key) and current.get(key) != backed_up.get(key):
                return "changed"
        return "same"

    async def _destination(self, kind: str) -> str:
        if kind == "event":
            # One calendar per mailbox is backed up (the primary): events go to the default one.
            return self._user_path("events")
        if self._target.folder:
            async with self._folder_lock:
                folder_id = await self._named_contact_folder(self._target.folder)
            return self._user_path("contactFolders", folder_id, "contacts")
        return self._user_path("contacts")

    async def _named_contact_folder(self, name: str) -> str:
        if self._contact_folder is not None:
            return self._contact_folder
        listed = await self._client.get_json(
            self._user_path("contactFolders"), scope=Scope.mailbox(self._target.user)
        )
        for folder in listed.get("value", []):
            if str(folder.get("displayName", "")).casefold() == name.casefold():
                self._contact_folder = str(folder["id"])
                return self._contact_folder
        created = await self._client.send_json(
            "POST",
            self._user_path("contactFolders"),
            {"displayName": name},
            scope=Scope.mailbox(self._target.user),
        )
        self._contact_folder = str(created["id"])
        return self._contact_folder
