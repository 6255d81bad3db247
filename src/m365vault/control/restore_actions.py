"""The actions of the explore trees (v3 §8.4, §9.2, §10.2): what a selection holds, and restoring,
saving, exporting or sending it. Each action is one event of the session (see `explore`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

from m365vault.catalog import EntryKind, ObjectInfo, ObjectKind, VersionInfo
from m365vault.control.enums import RestoreSessionType
from m365vault.control.errors import InvalidRequest, NotFound
from m365vault.control.explore import RestoreExplorer, SessionTree
from m365vault.control.services import in_thread
from m365vault.control.settings import Settings
from m365vault.m365 import GraphError, GraphNotFound, enumeration
from m365vault.restore import mailer, site_targets
from m365vault.restore.archive_import import ArchiveRestorer, ArchiveTarget
from m365vault.restore.errors import InvalidMailSettings, RestoreOutputError
from m365vault.restore.formats import eml, group_thread, mbox, msg, zipstream
from m365vault.restore.formats.download import Download, MailItem, Opener
from m365vault.restore.formats.group_thread import is_group_thread
from m365vault.restore.list_items import ListItemRestorer, ListOptions, ListTarget
from m365vault.restore.outlook_items import OutlookItemRestorer, OutlookSource, restorable_kind
from m365vault.restore.writeback import (
    DriveTarget,
    FileOptions,
    FileRestorer,
    FileSource,
    MailOptions,
    MailRestorer,
    MailSource,
    MailTarget,
    RestoreStats,
    excluded_folders,
    is_excluded,
)

CONTAINERS = (EntryKind.FOLDER, EntryKind.LIST, EntryKind.LIBRARY)
DOCUMENTS = (EntryKind.DOCUMENT,)
STREAM_BATCH = 200  # items listed per catalog read while an output streams
ARCHIVE_OUTPUTS = (
    "Archive mailbox items are kept in Exchange's opaque export format (Graph beta exportItems) and "
    "cannot be saved, exported or sent; use restoretoOriginallocation (back into the archive) or "
    "restoreTo (into a mailbox) instead."
)


@dataclass(frozen=True)
class Selection:
    """What an action applies to: the whole organization (no object), an object, a container in it,
    or chosen elements (ids as listed)."""

    object_id: str | None = None
    container_id: str | None = None
    ids: tuple[str, ...] | None = None
    folder_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Picked:
    obj: ObjectInfo
    path: list[str]
    version: VersionInfo


@dataclass(frozen=True)
class MailRestoreRequest:
    in_place: bool
    mailbox: str | None = None  # restoreTo: the target mailbox (address or id)
    folder: str | None = None  # restoreTo: a folder to restore under
    options: MailOptions = field(default_factory=MailOptions)


@dataclass(frozen=True)
class DocumentRestoreRequest:
    in_place: bool
    target_object: str | None = None  # copyTo / restoreTo: OneDrive (user id) or site id
    folder: str | None = None
    options: FileOptions = field(default_factory=FileOptions)
    library: str | None = None  # Vesp restoreTo `list`: the target library or list by name
    site_alias: str | None = None  # Vesp restoreTo `alias`: the target site (id or URL)


@dataclass(frozen=True)
class OneDriveOutcome:
    """One OneDrive of a bulk restore: its statistics, or why it was not restored."""

    id: str
    name: str | None
    stats: RestoreStats | None
    problem: str | None


@dataclass(frozen=True)
class SendRequest:
    to: str | None = None  # None: the mailbox's own address (sendtoDefaultAddress)
    sender: str | None = None
    subject: str | None = None
    text: str | None = None


class RestoreActions:
    def __init__(self, explorer: RestoreExplorer, settings: Settings) -> None:
        self._x = explorer
        self.explorer = explorer
        self._settings = settings

    # ------------------------------------------------------------ selections
    def pick(self, tree: SessionTree, selection: Selection, kinds: tuple[EntryKind, ...]) -> list[Picked]:
        """The elements of `kinds` the selection holds, with their container paths."""
        return list(self.iter_pick(tree, selection, kinds))

    def iter_pick(
        self, tree: SessionTree, selection: Selection, kinds: tuple[EntryKind, ...]
    ) -> Iterator[Picked]:
        """`pick`, lazily: the catalog is read a page at a time as the caller goes."""
        objects: Iterable[ObjectInfo] = (
            [tree.object(selection.object_id)]
            if selection.object_id is not None
            else _paged(lambda off, lim: tree.objects(off, lim).items)
        )
        for obj in objects:
            if selection.ids is not None:
                for wire_id in selection.ids:
                    version = tree.entry(obj, kinds, wire_id)
                    yield Picked(obj, tree.path_of(obj, version), version)
                roots: list[str | None] = list(selection.folder_ids)
            else:
                roots = list(selection.folder_ids) or [selection.container_id]
            for root in roots:
                prefix: list[str] = []
                if root is not None:
                    container = tree.entry(obj, CONTAINERS, root)
                    prefix = [*tree.path_of(obj, container), container.metadata.name or container.external_id]
                for path, version in tree.explorer.iter_subtree(obj, root, kinds, CONTAINERS):
                    yield Picked(obj, prefix + path, version)

    def _history(self, tree: SessionTree, picked: Picked) -> list[VersionInfo]:
        """Older versions of a document seen by the session's point in time, oldest first."""
        return [
            v
            for v in tree.explorer.history(picked.obj, picked.version.external_id)
            if v.first_seen < picked.version.first_seen and v.content_ref is not None
        ]

    # ------------------------------------------------------------ mail: save, export
    def refuse_archive_output(self, tree: SessionTree, selection: Selection) -> None:
        """400 for a readable output (.eml, .msg, mbox, PST, mail) of an archive mailbox's items;
        organization-wide outputs leave archive items out instead (see `iter_mail`)."""
        if selection.object_id is not None and tree.object(selection.object_id).kind is ObjectKind.ARCHIVE:
            raise InvalidRequest(ARCHIVE_OUTPUTS)

    def mail_only(self, tree: SessionTree, selection: Selection) -> list[Picked]:
        """The selection's messages (content = MIME); calendar items and contacts are left out."""
        return list(self.iter_mail(tree, selection))

    def iter_mail(self, tree: SessionTree, selection: Selection) -> Iterator[Picked]:
        """Messages and group mailbox threads (output as MIME built from their posts); archive
        items (opaque export streams, no MIME) are left out."""
        return (
            p
            for p in self.iter_pick(tree, selection, (EntryKind.ITEM,))
            if p.version.content_ref
            and p.obj.kind is not ObjectKind.ARCHIVE
            and (is_message(p.version.metadata.item_class) or is_group_thread(p.version.metadata.item_class))
        )

    def _mime(self, p: Picked) -> Opener:
        """An opener of the item's MIME: as backed up, or built from a group thread's JSON."""
        reader = self._x.content(p.obj)
        raw = reader.opener(p.version)
        if is_group_thread(p.version.metadata.item_class):
            return lambda: group_thread.thread_mime(raw(), reader.stream_ref)
        return raw

    async def save_mail(self, tree: SessionTree, selection: Selection, fmt: str, title: str) -> Download:
        """mbox, or a ZIP of .eml / .msg (one .eml alone for one chosen item). The selection is
        streamed from the catalog a batch at a time as the output is written: memory does not
        grow with the mailbox (beyond the ZIP's own directory of names)."""
        source = self.iter_mail(tree, selection)
        # Chosen items are all looked up first (an unknown id is a 404 before any byte is sent).
        head = await in_thread(lambda: list(source) if selection.ids is not None else list(islice(source, 2)))
        if not head:
            raise InvalidRequest("There is nothing to save: the selection holds no item.")
        name = _archive_name(tree, selection, head)

        async def picked() -> AsyncIterator[Picked]:
            for p in head:
                yield p
            while batch := await in_thread(lambda: list(islice(source, STREAM_BATCH))):
                for p in batch:
                    yield p

        def item(p: Picked) -> MailItem:
            meta = p.version.metadata
            return MailItem(meta.subject, self._mime(p), meta.received_at)

        if fmt == "mbox":

            async def messages() -> AsyncIterator[mbox.MboxMessage]:
                async for p in picked():
                    meta = p.version.metadata
                    yield mbox.MboxMessage(self._mime(p), meta.sender, meta.received_at)

            return self._x.download(tree, "Export", title, mbox.export_to_mbox(messages(), name))

        async def items() -> AsyncIterator[MailItem]:
            async for p in picked():
                yield item(p)

        if fmt == "eml":
            if len(head) == 1 and selection.ids is not None:
                one = item(head[0])
                meta = head[0].version.metadata
                size = None if is_group_thread(meta.item_class) else meta.size  # built, not stored
                out = eml.save_to_eml(one.subject, one.open(), size)
            else:
                out = eml.save_many_to_eml(items(), archive_name=name + ".zip")
            return self._x.download(tree, "Save", title, out)
        return self._x.download(
            tree, "Save", title, msg.save_many_to_msg(items(), archive_name=name + ".zip")
        )

    async def save_one_msg(self, tree: SessionTree, selection: Selection, title: str) -> Download:
        """One item as .msg: built before answering, so a failure can still be a status code."""
        picked = [
            p
            for p in await in_thread(lambda: self.pick(tree, selection, (EntryKind.ITEM,)))
            if p.version.content_ref
        ]
        if len(picked) != 1:
            raise InvalidRequest("There is nothing to save: the selection holds no item.")
        p = picked[0]

        async def build() -> Download:
            try:
                return await msg.save_to_msg(
                    p.version.metadata.subject,
                    self._mime(p),
                    received=p.version.metadata.received_at,
                )
            except RestoreOutputError as err:
                raise InvalidRequest(str(err)) from err

        built = await self._x.operation(
            tree, "Save", title, build(), lambda d: f"{d.filename}: {d.size} bytes."
        )
        return built

    # ------------------------------------------------------------ mail: restore
    async def restore_mail(
        self, tree: SessionTree, selection: Selection, request: MailRestoreRequest, title: str
    ) -> RestoreStats:
        picked = await in_thread(lambda: self.pick(tree, selection, (EntryKind.ITEM,)))
        if any(is_group_thread(p.version.metadata.item_class) for p in picked):
            raise InvalidRequest(
                "Group mailbox conversations cannot be restored to a mailbox; "
                "use saveToEml, savetoMsg or exportToMbox instead."
            )
        credentials = await in_thread(lambda: self._x.credentials(tree))

        async def work() -> RestoreStats:
            total = RestoreStats()
            async with self._x.wiring.graph(credentials) as client:
                by_object: dict[int, list[Picked]] = {}
                for p in picked:
                    by_object.setdefault(p.obj.id, []).append(p)
                for group in by_object.values():
                    if group[0].obj.kind is ObjectKind.ARCHIVE:
                        _add(total, await self._restore_archive(client, group, request))
                    else:
                        _add(total, await self._restore_mailbox(client, group, request))
            return total

        return await self._x.operation(tree, "Restore", title, work(), _summary)

    async def _restore_mailbox(
        self, client: Any, group: list[Picked], request: MailRestoreRequest
    ) -> RestoreStats:
        """One source mailbox's items: messages through the MIME route, calendar items and
        contacts through their JSON routes; excluded folders skipped."""
        obj = group[0].obj
        user = obj.external_id if request.in_place else str(request.mailbox)
        target = MailTarget(user=user, folder=request.folder, in_place=request.in_place)
        stats = RestoreStats()
        excluded = await excluded_folders(client, user, request.options) if request.in_place else {}
        messages: list[MailSource] = []
        others: list[OutlookSource] = []
        for p in group:
            if is_excluded(p.path, p.version.parent_external_id, excluded):
                stats.skipped += 1
            elif restorable_kind(p.version.metadata.item_class) is not None:
                others.append(OutlookSource(p.path, p.version))
            else:
                messages.append(MailSource(p.path, p.version))
        reader = self._x.content(obj)
        if messages:
            _add(stats, await MailRestorer(client, reader, target, request.options).restore(messages))
        if others:
            _add(stats, await OutlookItemRestorer(client, reader, target, request.options).restore(others))
        return stats

    async def _restore_archive(
        self, client: Any, group: list[Picked], request: MailRestoreRequest
    ) -> RestoreStats:
        """An archive's items through import sessions: in place into the archive, or into the
        target user's primary mailbox (restore/archive_import.py)."""
        obj = group[0].obj
        user = obj.external_id if request.in_place else str(request.mailbox)
        target = ArchiveTarget(user=user, in_place=request.in_place, folder=request.folder)
        restorer = ArchiveRestorer(client, self._x.content(obj), target, request.options)
        return await restorer.restore([p.version for p in group])

    # ------------------------------------------------------------ mail: send
    async def send_mail(
        self, tree: SessionTree, selection: Selection, request: SendRequest, title: str
    ) -> int:
        picked = await in_thread(lambda: self.mail_only(tree, selection))
        if not picked:
            raise InvalidRequest("There is nothing to send: the selection holds no message.")
        settings = await in_thread(lambda: self._smtp("email:vex"))
        to = request.to
        if to is None:
            addresses = {p.obj.email for p in picked}
            if len(addresses) != 1 or None in addresses:
                raise InvalidRequest("sendtoDefaultAddress needs items of one mailbox with a known address.")
            to = str(next(iter(addresses)))
        attachments = [mailer.mail_item_attachment(p.version.metadata.subject, self._mime(p)) for p in picked]
        subject = request.subject or f"Restored items ({len(picked)})"
        text = request.text or "The items restored from backup are attached to this message."
        return await self._send(tree, title, settings, to, request.sender, subject, text, attachments)

    async def _send(
        self,
        tree: SessionTree,
        title: str,
        settings: mailer.SmtpSettings,
        to: str,
        sender: str | None,
        subject: str,
        text: str,
        attachments: list[mailer.MailAttachment],
    ) -> int:
        async def work() -> int:
            try:
                await mailer.send_mail(
                    settings,
                    to=to,
                    subject=subject,
                    text=text,
                    attachments=attachments,
                    sender=sender or None,
                )
            except (InvalidMailSettings, RestoreOutputError) as err:
                raise InvalidRequest(f"The mail could not be sent: {err}") from err
            return len(attachments)

        return await self._x.operation(tree, "Send", title, work(), lambda n: f"{n} item(s) sent to {to}.")

    def _smtp(self, name: str) -> mailer.SmtpSettings:
        values = self._settings.get(name)
        resource = {
            "email:vex": "VEXEmailSettings",
            "email:veod": "VEODEmailSettings",
            "email:vesp": "VESPEmailSettings",
        }[name]
        if not values.get("server"):
            raise InvalidRequest(f"Sending needs an SMTP server: set it in /v3/{resource}.")
        password = self._settings.secret(name) or ""
        try:
            return mailer.SmtpSettings.from_v3({**values, "userPassword": password})
        except InvalidMailSettings as err:
            raise InvalidRequest(f"/v3/{resource} cannot be used: {err}") from err

    # ------------------------------------------------------------ documents
    def save_documents(self, tree: SessionTree, selection: Selection, as_zip: bool, title: str) -> Download:
        picked = [p for p in self.pick(tree, selection, (EntryKind.DOCUMENT,)) if p.version.content_ref]
        if not picked:
            raise InvalidRequest("There is nothing to save: the selection holds no document.")
        roots: dict[int, bool] = {}

        def path(p: Picked) -> list[str]:
            return (
                p.path
                if tree.type is not RestoreSessionType.Veod
                else _drive_relative(tree, p.obj, p.path, roots)
            )

        sources = [
            zipstream.DocumentSource(
                "/".join([*path(p), p.version.metadata.name or p.version.external_id]),
                self._x.content(p.obj).opener(p.version),
                p.version.metadata.modified_at,
                p.version.metadata.size,
            )
            for p in picked
        ]
        single = selection.ids is not None and len(selection.ids) == 1 and not selection.folder_ids
        out = zipstream.save_documents(
            sources, as_zip=as_zip or not single, archive_name=_archive_name(tree, selection, picked) + ".zip"
        )
        return self._x.download(tree, "Save", title, out)

    async def send_documents(
        self, tree: SessionTree, selection: Selection, request: SendRequest, title: str
    ) -> int:
        picked = await in_thread(lambda: self.pick(tree, selection, (EntryKind.DOCUMENT,)))
        picked = [p for p in picked if p.version.content_ref]
        if not picked:
            raise InvalidRequest("There is nothing to send: the selection holds no document.")
        name = "email:veod" if tree.type.value == "Veod" else "email:vesp"
        settings = await in_thread(lambda: self._smtp(name))
        if not request.to:
            raise InvalidRequest("'to' is required to send documents.")
        attachments = [
            mailer.document_attachment(
                p.version.metadata.name or p.version.external_id, self._x.content(p.obj).opener(p.version)
            )
            for p in picked
        ]
        subject = request.subject or f"Restored documents ({len(picked)})"
        text = request.text or "The documents restored from backup are attached to this message."
        return await self._send(tree, title, settings, request.to, request.sender, subject, text, attachments)

    async def restore_documents(
        self, tree: SessionTree, selection: Selection, request: DocumentRestoreRequest, title: str
    ) -> RestoreStats:
        """Documents (and, in a SharePoint session, list items) back to their place or another."""
        sharepoint = tree.type.value == "Vesp"
        kinds = (EntryKind.DOCUMENT, EntryKind.ITEM) if sharepoint else (EntryKind.DOCUMENT,)

        drive_roots: dict[int, bool] = {}

        def collect() -> tuple[list[tuple[Picked, FileSource]], list[tuple[Picked, str]]]:
            documents: list[tuple[Picked, FileSource]] = []
            items: list[tuple[Picked, str]] = []
            for p in self.pick(tree, selection, kinds):
                if p.version.kind is EntryKind.ITEM:
                    items.append((p, _list_of(tree, p)))
                    continue
                history = self._history(tree, p) if request.options.all_versions else []
                path = p.path if sharepoint else _drive_relative(tree, p.obj, p.path, drive_roots)
                documents.append((p, FileSource(path, p.version, history)))
            return documents, items

        pairs, list_items = await in_thread(collect)
        credentials = await in_thread(lambda: self._x.credentials(tree))

        async def work() -> RestoreStats:
            total = RestoreStats()
            async with self._x.wiring.graph(credentials) as client:
                # Every target is resolved before anything is written: a bad name changes nothing.
                site = await self._target_site(client, request) if sharepoint else None
                targets = site_targets.SiteTargets(client)
                groups: dict[tuple[int, str, bool], list[FileSource]] = {}
                for p, source in pairs:
                    if sharepoint:
                        drive, in_place = await self._library_target(targets, p, request, site)
                    else:
                        drive, in_place = await self._drive_of(client, p, request)
                    groups.setdefault((p.obj.id, drive, in_place), []).append(
                        _strip_library(source) if sharepoint else source
                    )
                lists: dict[tuple[int, str, str, bool], list[VersionInfo]] = {}
                for p, list_id in list_items:
                    target_site, target_list, in_place = await self._list_target(
                        targets, p, list_id, request, site
                    )
                    lists.setdefault((p.obj.id, target_site, target_list, in_place), []).append(p.version)
                readers = {p.obj.id: self._x.content(p.obj) for p, _ in [*pairs, *list_items]}
                for (obj_id, drive, in_place), sources in groups.items():
                    target = DriveTarget(drive, request.folder, in_place)
                    restorer = FileRestorer(client, readers[obj_id], target, request.options)
                    _add(total, await restorer.restore(sources))
                for (obj_id, target_site, target_list, in_place), versions in lists.items():
                    options = ListOptions(request.options.changed_items, request.options.deleted_items)
                    list_target = ListTarget(target_site, target_list, in_place)
                    _add(
                        total,
                        await ListItemRestorer(client, readers[obj_id], list_target, options).restore(
                            versions
                        ),
                    )
            return total

        return await self._x.operation(tree, "Restore", title, work(), _summary)

    async def restore_onedrives(
        self,
        tree: SessionTree,
        ids: tuple[str, ...],
        options: FileOptions,
        skip_unresolved: bool,
        title: str,
    ) -> list[OneDriveOutcome]:
        """`/OneDrives/Action`: whole OneDrives back to their owners, one outcome per OneDrive.
        Unresolved (not in this backup, or the owner has no OneDrive now): without skipUnresolved
        the request is refused before anything is written; with it, they are reported and left."""
        if len(set(ids)) != len(ids):
            raise InvalidRequest("'oneDrives' names a OneDrive twice.")

        def backed_up() -> dict[str, ObjectInfo | None]:
            found: dict[str, ObjectInfo | None] = {}
            for wire_id in ids:
                try:
                    found[wire_id] = tree.object(wire_id)
                except NotFound:
                    found[wire_id] = None
            return found

        objects = await in_thread(backed_up)
        credentials = await in_thread(lambda: self._x.credentials(tree))

        async def work() -> list[OneDriveOutcome]:
            outcomes: dict[str, OneDriveOutcome] = {}
            async with self._x.wiring.graph(credentials) as client:
                drives: dict[str, str] = {}
                for wire_id, obj in objects.items():
                    if obj is None:
                        outcomes[wire_id] = OneDriveOutcome(wire_id, None, None, "not in this restore point")
                        continue
                    try:
                        drives[wire_id] = await self._onedrive_of(client, obj, obj.external_id)
                    except InvalidRequest as err:
                        outcomes[wire_id] = OneDriveOutcome(wire_id, obj.name, None, str(err))
                unresolved = list(outcomes.values())
                if unresolved and not skip_unresolved:
                    first = unresolved[0]
                    raise InvalidRequest(
                        f"The OneDrive '{first.id}' cannot be restored ({first.problem}); "
                        "set skipUnresolved to restore the others."
                    )
                for wire_id, drive in drives.items():
                    obj = objects[wire_id]
                    assert obj is not None
                    sources = await in_thread(partial(self._whole_drive, tree, wire_id, options))
                    target = DriveTarget(drive, None, True)
                    stats = await FileRestorer(client, self._x.content(obj), target, options).restore(sources)
                    outcomes[wire_id] = OneDriveOutcome(wire_id, obj.name, stats, None)
            return [outcomes[i] for i in ids]

        def summary(outcomes: list[OneDriveOutcome]) -> str:
            total = RestoreStats()
            for o in outcomes:
                if o.stats is not None:
                    _add(total, o.stats)
            left = sum(1 for o in outcomes if o.stats is None)
            return f"{len(outcomes) - left} OneDrive(s) restored, {left} unresolved. " + _summary(total)

        return await self._x.operation(tree, "Restore", title, work(), summary)

    def _whole_drive(self, tree: SessionTree, wire_id: str, options: FileOptions) -> list[FileSource]:
        picked = self.pick(tree, Selection(object_id=wire_id), DOCUMENTS)
        roots: dict[int, bool] = {}
        return [
            FileSource(
                _drive_relative(tree, p.obj, p.path, roots),
                p.version,
                self._history(tree, p) if options.all_versions else [],
            )
            for p in picked
        ]

    async def _target_site(self, client: Any, request: DocumentRestoreRequest) -> str | None:
        """The site `alias` names (None: each element's own site)."""
        if request.site_alias is None:
            return None
        found = await site_targets.resolve_site(client, request.site_alias)
        if found is None:
            raise InvalidRequest(f"The tenant has no site '{request.site_alias}' to restore to.")
        return found

    async def _drive_of(self, client: Any, p: Picked, request: DocumentRestoreRequest) -> tuple[str, bool]:
        """The OneDrive a document goes back to (the target user's), and whether in place."""
        user = (
            request.target_object if (request.target_object and not request.in_place) else p.obj.external_id
        )
        return await self._onedrive_of(client, p.obj, user), request.in_place

    async def _target_name(
        self,
        targets: site_targets.SiteTargets,
        site: str,
        own: str,
        request: DocumentRestoreRequest,
        kind: str,
    ) -> str:
        """The library (kind "library") or list (kind "list") name an element goes to: `list` when
        it names one of that kind in the target site; its own container's name when `list` names
        one of the other kind (that one is for the other elements of a mixed selection)."""
        wanted = request.library
        if wanted is None or wanted.casefold() == own.casefold():
            return own
        library = await targets.library(site, wanted)
        named_list = await targets.list(site, wanted)
        if library is None and named_list is None:
            raise InvalidRequest(f"The target site has no library or list '{wanted}' to restore to.")
        mine = library if kind == "library" else named_list
        return wanted if mine is not None else own

    async def _library_target(
        self, targets: site_targets.SiteTargets, p: Picked, request: DocumentRestoreRequest, site: str | None
    ) -> tuple[str, bool]:
        """The library a SharePoint document goes to (another one by `list` / `alias`), and
        whether that is its own place."""
        library = _library_of(p)
        if library is None:
            raise InvalidRequest(f"The library of {p.version.metadata.name} is not known.")
        own = p.path[0] if p.path else ""
        target_site = site or p.obj.external_id
        wanted = await self._target_name(targets, target_site, own, request, "library")
        if target_site == p.obj.external_id and wanted.casefold() == own.casefold():
            return library, request.in_place
        found = await targets.library(target_site, wanted)
        if found is None:
            raise InvalidRequest(f"The target site has no document library '{wanted}' to restore to.")
        return found, False

    async def _onedrive_of(self, client: Any, obj: ObjectInfo, user: str) -> str:
        """The drive id of `user`'s OneDrive (the backed-up one's own id when it is the owner)."""
        extras = obj.extras or {}
        if user == obj.external_id and extras.get("driveId"):
            return str(extras["driveId"])
        try:
            drive = await enumeration.get_user_drive(client, user)
        except GraphNotFound:
            drive = None
        except GraphError as err:
            raise InvalidRequest(f"The OneDrive of '{user}' could not be read: {err.reason}") from err
        if drive is None:
            raise InvalidRequest(f"'{user}' has no OneDrive to restore to.")
        return str(drive["id"])

    async def _list_target(
        self,
        targets: site_targets.SiteTargets,
        p: Picked,
        list_id: str,
        request: DocumentRestoreRequest,
        site: str | None,
    ) -> tuple[str, str, bool]:
        """(site id, list id, in place) for a list item: its own list unless `list` / `alias`
        name another one (which must exist: lists are not created)."""
        own = p.path[0] if p.path else ""
        target_site = site or p.obj.external_id
        wanted = await self._target_name(targets, target_site, own, request, "list")
        if target_site == p.obj.external_id and wanted.casefold() == own.casefold():
            return target_site, list_id, request.in_place
        found = await targets.list(target_site, wanted)
        if found is None:
            raise InvalidRequest(f"The target site has no list '{wanted}' to restore to.")
        return target_site, found, False


NON_MIME_CLASSES = (
    "ipm.post",  # a group mailbox thread: its content is the thread and posts as JSON
    "ipm.appointment",
    "ipm.contact",
    "ipm.distlist",
    "ipm.task",
    "ipm.stickynote",
    "ipm.activity",
)


def is_message(item_class: str | None) -> bool:
    """Items whose backed-up content is the message's MIME (mail, meeting requests, reports)."""
    return not (item_class or "IPM.Note").casefold().startswith(NON_MIME_CLASSES)


def _list_of(tree: SessionTree, p: Picked) -> str:
    """The list a list item belongs to: up its parents (list folders) to the list entry."""
    parent = p.version.parent_external_id
    for _ in range(64):
        if parent is None:
            break
        container = tree.explorer.last_known(p.obj, parent)
        if container is None:
            break
        if container.kind is EntryKind.LIST:
            return container.external_id
        parent = container.parent_external_id
    raise InvalidRequest(
        f"The list of the item {p.version.metadata.name or p.version.external_id} is not known."
    )


def _library_of(p: Picked) -> str | None:
    extras = p.version.metadata.extras or {}
    value = extras.get("driveId") or extras.get("libraryId")
    return str(value) if value else None


def _drive_relative(tree: SessionTree, obj: ObjectInfo, path: list[str], roots: dict[int, bool]) -> list[str]:
    """A OneDrive path as the drive sees it. The engine records the drive itself as a library entry
    at the object's root (every folder and document sits below it), so catalog paths start with the
    drive's name, which is not a folder inside the drive. `roots` caches the answer per object."""
    if obj.id not in roots:
        roots[obj.id] = tree.drive_root(obj) is not None
    return path[1:] if roots[obj.id] and path else path


def _strip_library(source: FileSource) -> FileSource:
    """SharePoint paths start with the library's name; inside the drive they start below it."""
    return FileSource(source.path[1:], source.version, source.history)


def _add(total: RestoreStats, stats: RestoreStats) -> None:
    total.created += stats.created
    total.merged += stats.merged
    total.failed += stats.failed
    total.skipped += stats.skipped
    total.problems.extend(stats.problems)


def _summary(stats: RestoreStats) -> str:
    text = (
        f"Created {stats.created}, merged {stats.merged}, skipped {stats.skipped}, "
        f"failed {stats.failed} item(s)."
    )
    if stats.problems:
        text += " " + "; ".join(stats.problems[:5])
    return text


def _archive_name(tree: SessionTree, selection: Selection, picked: list[Picked]) -> str:
    if selection.object_id is None:
        return "organization"
    return picked[0].obj.name or "export" if picked else "export"


def _paged(fetch: Any, page: int = 500) -> Iterator[Any]:
    offset = 0
    while True:
        batch = fetch(offset, page)
        yield from batch
        if len(batch) < page:
            return
        offset += page
