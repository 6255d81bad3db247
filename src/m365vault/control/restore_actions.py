"""The actions of the explore trees (v3 §8.4, §9.2, §10.2): what a selection holds, and restoring,
saving, exporting or sending it. Each action is one event of the session (see `explore`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m365vault.catalog import EntryKind, ObjectInfo, VersionInfo
from m365vault.control.errors import InvalidRequest
from m365vault.control.explore import RestoreExplorer, SessionTree
from m365vault.control.services import in_thread
from m365vault.control.settings import Settings
from m365vault.m365 import GraphError, GraphNotFound, enumeration
from m365vault.restore import mailer
from m365vault.restore.errors import InvalidMailSettings, RestoreOutputError
from m365vault.restore.formats import eml, mbox, msg, zipstream
from m365vault.restore.formats.download import Download, MailItem
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
)

CONTAINERS = (EntryKind.FOLDER, EntryKind.LIST, EntryKind.LIBRARY)


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
    library: str | None = None  # Vesp restoreTo `list`: must name the documents' own library


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
        objects = (
            [tree.object(selection.object_id)]
            if selection.object_id is not None
            else _all(lambda off, lim: tree.objects(off, lim).items)
        )
        picked: list[Picked] = []
        for obj in objects:
            if selection.ids is not None:
                for wire_id in selection.ids:
                    version = tree.entry(obj, kinds, wire_id)
                    picked.append(Picked(obj, tree.path_of(obj, version), version))
                roots: list[str | None] = list(selection.folder_ids)
            else:
                roots = list(selection.folder_ids) or [selection.container_id]
            for root in roots:
                prefix: list[str] = []
                if root is not None:
                    container = tree.entry(obj, CONTAINERS, root)
                    prefix = [*tree.path_of(obj, container), container.metadata.name or container.external_id]
                for path, version in tree.explorer.subtree(obj, root, kinds, CONTAINERS):
                    picked.append(Picked(obj, prefix + path, version))
        return picked

    def _history(self, tree: SessionTree, picked: Picked) -> list[VersionInfo]:
        """Older versions of a document seen by the session's point in time, oldest first."""
        return [
            v
            for v in tree.explorer.history(picked.obj, picked.version.external_id)
            if v.first_seen < picked.version.first_seen and v.content_ref is not None
        ]

    # ------------------------------------------------------------ mail: save, export
    def mail_only(self, tree: SessionTree, selection: Selection) -> list[Picked]:
        """The selection's messages (content = MIME); calendar items and contacts are left out."""
        return [
            p
            for p in self.pick(tree, selection, (EntryKind.ITEM,))
            if p.version.content_ref and is_message(p.version.metadata.item_class)
        ]

    def save_mail(self, tree: SessionTree, selection: Selection, fmt: str, title: str) -> Download:
        picked = self.mail_only(tree, selection)
        if not picked:
            raise InvalidRequest("There is nothing to save: the selection holds no item.")
        items = [
            MailItem(
                p.version.metadata.subject,
                self._x.content(p.obj).opener(p.version),
                p.version.metadata.received_at,
            )
            for p in picked
        ]
        name = _archive_name(tree, selection, picked)
        if fmt == "mbox":
            out = mbox.export_to_mbox(
                [
                    mbox.MboxMessage(i.open, p.version.metadata.sender, i.received)
                    for i, p in zip(items, picked, strict=True)
                ],
                name,
            )
            return self._x.download(tree, "Export", title, out)
        if fmt == "eml":
            if len(items) == 1 and selection.ids is not None:
                out = eml.save_to_eml(items[0].subject, items[0].open(), picked[0].version.metadata.size)
            else:
                out = eml.save_many_to_eml(items, archive_name=name + ".zip")
            return self._x.download(tree, "Save", title, out)
        if len(items) > 1 or selection.ids is None:
            return self._x.download(
                tree, "Save", title, msg.save_many_to_msg(items, archive_name=name + ".zip")
            )
        raise AssertionError("a single .msg is built by save_one_msg")

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
                    self._x.content(p.obj).opener(p.version),
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
        credentials = await in_thread(lambda: self._x.credentials(tree))

        async def work() -> RestoreStats:
            total = RestoreStats()
            async with self._x.wiring.graph(credentials) as client:
                by_object: dict[int, list[Picked]] = {}
                for p in picked:
                    by_object.setdefault(p.obj.id, []).append(p)
                for group in by_object.values():
                    obj = group[0].obj
                    user = obj.external_id if request.in_place else str(request.mailbox)
                    target = MailTarget(user=user, folder=request.folder, in_place=request.in_place)
                    restorer = MailRestorer(client, self._x.content(obj), target, request.options)
                    stats = await restorer.restore([MailSource(p.path, p.version) for p in group])
                    _add(total, stats)
            return total

        return await self._x.operation(tree, "Restore", title, work(), _summary)

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
        attachments = [
            mailer.mail_item_attachment(p.version.metadata.subject, self._x.content(p.obj).opener(p.version))
            for p in picked
        ]
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
        sources = [
            zipstream.DocumentSource(
                "/".join([*p.path, p.version.metadata.name or p.version.external_id]),
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
        def collect() -> list[tuple[Picked, FileSource]]:
            out: list[tuple[Picked, FileSource]] = []
            for p in self.pick(tree, selection, (EntryKind.DOCUMENT,)):
                history = self._history(tree, p) if request.options.all_versions else []
                out.append((p, FileSource(p.path, p.version, history)))
            return out

        pairs = await in_thread(collect)
        if request.library is not None:
            wanted = request.library.casefold()
            others = {p.path[0] for p, _ in pairs if p.path and p.path[0].casefold() != wanted}
            if others:
                raise InvalidRequest(
                    f"Restoring into another library than '{sorted(others)[0]}' is not supported yet; "
                    "name the documents' own library in 'list' or leave it out."
                )
        credentials = await in_thread(lambda: self._x.credentials(tree))

        async def work() -> RestoreStats:
            total = RestoreStats()
            async with self._x.wiring.graph(credentials) as client:
                groups: dict[tuple[int, str], list[tuple[Picked, FileSource]]] = {}
                for p, source in pairs:
                    drive = await self._drive_of(client, p, request)
                    groups.setdefault((p.obj.id, drive), []).append((p, source))
                for (_, drive), group in groups.items():
                    target = DriveTarget(drive, request.folder, request.in_place)
                    sources = [_strip_library(s) if tree.type.value == "Vesp" else s for _, s in group]
                    restorer = FileRestorer(client, self._x.content(group[0][0].obj), target, request.options)
                    _add(total, await restorer.restore(sources))
            return total

        return await self._x.operation(tree, "Restore", title, work(), _summary)

    async def _drive_of(self, client: Any, p: Picked, request: DocumentRestoreRequest) -> str:
        """The drive a document goes back to: the OneDrive of the (target) user, or the library."""
        if p.obj.kind.value == "site":
            if request.target_object is not None and not request.in_place:
                raise InvalidRequest("Restoring SharePoint documents to another site is not supported yet.")
            library = _library_of(p)
            if library is None:
                raise InvalidRequest(f"The library of {p.version.metadata.name} is not known.")
            return library
        user = (
            request.target_object if (request.target_object and not request.in_place) else p.obj.external_id
        )
        extras = p.obj.extras or {}
        if user == p.obj.external_id and extras.get("driveId"):
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


NON_MIME_CLASSES = (
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


def _library_of(p: Picked) -> str | None:
    extras = p.version.metadata.extras or {}
    value = extras.get("driveId") or extras.get("libraryId")
    return str(value) if value else None


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


def _all(fetch: Any, page: int = 500) -> list[Any]:
    out: list[Any] = []
    offset = 0
    while True:
        batch = fetch(offset, page)
        out.extend(batch)
        if len(batch) < page:
            return out
        offset += page
