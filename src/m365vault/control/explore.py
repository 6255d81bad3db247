"""Restore-session use cases: browsing the explore trees and the operations on what is found (restore
to the tenant, save, export, send), each recorded as one event of the session.

A session is usable while Working and only by the account that opened it. Stop moves it to
Stopping, waits for its operations in flight (downloads included) to end, then Stopped; a session
without activity for `idle_timeout` is stopped the same way by `expire_idle` (run periodically by
the server), with an event saying why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select

from m365vault.catalog import (
    ANY_PARENT,
    CatalogReader,
    EntryKind,
    ObjectInfo,
    ObjectKind,
    PageCursors,
    VersionInfo,
)
from m365vault.control.accounts import Principal
from m365vault.control.enums import RestoreSessionState, RestoreSessionType
from m365vault.control.errors import Forbidden, InvalidRequest, NotFound
from m365vault.control.organizations import Organizations
from m365vault.control.ports import TenantCredentials
from m365vault.control.services import Services, in_thread
from m365vault.db.config_tables import RestoreSession, RestoreSessionEvent
from m365vault.m365 import GraphClient
from m365vault.restore.content import ContentReader, RepositoryPool
from m365vault.restore.errors import RestoreOutputError
from m365vault.restore.explore import MAIL_KINDS, Explorer, Listing, Scope, object_wire_id
from m365vault.restore.formats.download import Download

log = logging.getLogger("m365vault.restore")
T = TypeVar("T")

GraphFactory = Callable[[TenantCredentials], GraphClient]
DEFAULT_IDLE_TIMEOUT = timedelta(minutes=30)

TREE_KINDS: dict[RestoreSessionType, tuple[ObjectKind, ...]] = {
    RestoreSessionType.Vex: MAIL_KINDS,
    RestoreSessionType.Veod: (ObjectKind.ONEDRIVE,),
    RestoreSessionType.Vesp: (ObjectKind.SITE,),
}
TREE_NAMES = {
    RestoreSessionType.Vex: "mailboxes",
    RestoreSessionType.Veod: "OneDrives",
    RestoreSessionType.Vesp: "sites",
}


@dataclass
class RestoreWiring:
    """What restore sessions need beyond the configuration database."""

    catalog: CatalogReader
    repositories: RepositoryPool
    graph: GraphFactory
    idle_timeout: timedelta = DEFAULT_IDLE_TIMEOUT


@dataclass
class _Live:
    """In-memory state of a Working session: paging positions, activity, operations in flight."""

    cursors: PageCursors = field(default_factory=PageCursors)
    last_activity: datetime | None = None  # by the injected clock
    in_flight: int = 0
    idle: threading.Event = field(default_factory=threading.Event)
    viewed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class SessionTree:
    """One Working session's explore tree, as the use cases below read it."""

    session_id: uuid.UUID
    type: RestoreSessionType
    organization_id: uuid.UUID
    organization_name: str
    explorer: Explorer

    @property
    def kinds(self) -> tuple[ObjectKind, ...]:
        return TREE_KINDS[self.type]

    def objects(self, offset: int, limit: int, parent: Any = ANY_PARENT) -> Listing[ObjectInfo]:
        return self.explorer.objects(self.kinds, offset, limit, parent)

    def object(self, wire_id: str) -> ObjectInfo:
        found = self.explorer.object(self.kinds, wire_id)
        if found is None:
            raise NotFound(
                f"No backed-up {TREE_NAMES[self.type][:-1]} with id '{wire_id}' at this point in time."
            )
        return found

    def entries(
        self,
        obj: ObjectInfo,
        kind: EntryKind,
        offset: int,
        limit: int,
        parent: Any = ANY_PARENT,
    ) -> Listing[tuple[str, VersionInfo]]:
        if isinstance(parent, str):
            self.entry(obj, (EntryKind.FOLDER, EntryKind.LIST, EntryKind.LIBRARY), parent)
        elif parent is None and self.type is RestoreSessionType.Veod:
            parent = self.drive_root(obj)  # the top of a OneDrive is what lies directly in the drive
        return self.explorer.entries(obj, kind, offset, limit, parent)

    def drive_root(self, obj: ObjectInfo) -> str | None:
        """The id of the library entry the engine records for a OneDrive's drive itself (every
        folder and document of the drive lies below it), or None when the drive's elements sit at
        the object's root."""
        found = next(iter(self.explorer.iter_current(obj, EntryKind.LIBRARY, None, page=1)), None)
        return None if found is None else found.external_id

    def entry(self, obj: ObjectInfo, kinds: tuple[EntryKind, ...], wire_id: str) -> VersionInfo:
        found = self.explorer.entry(obj, kinds, wire_id)
        if found is None:
            what = " or ".join(k.value for k in kinds)
            raise NotFound(
                f"No {what} with id '{wire_id}' in {obj.name or obj.external_id} at this point in time."
            )
        return found

    def path_of(self, obj: ObjectInfo, version: VersionInfo) -> list[str]:
        """Names of the containers from the object's root down to the element's parent."""
        names: list[str] = []
        parent = version.parent_external_id
        seen: set[str] = set()
        while parent and parent not in seen:
            seen.add(parent)
            container = self.explorer.entry(
                obj, (EntryKind.FOLDER, EntryKind.LIST, EntryKind.LIBRARY), parent
            )
            if container is None:
                container = self.explorer.last_known(obj, parent)
            if container is None:
                break
            names.insert(0, container.metadata.name or container.external_id)
            parent = container.parent_external_id
        return names


class RestoreExplorer:
    def __init__(self, services: Services, wiring: RestoreWiring) -> None:
        self._s = services
        self.wiring = wiring
        self._live: dict[uuid.UUID, _Live] = {}
        self._lock = threading.Lock()
        self._event_lock = threading.Lock()

    # ------------------------------------------------------------ sessions
    def tree(
        self, owner: Principal, session_id: uuid.UUID, wanted: RestoreSessionType | None = None
    ) -> SessionTree:
        """The session's tree, if it is Working, the caller's, and (when given) of the wanted type."""
        with self._s.unit_of_work() as db:
            row = db.get(RestoreSession, session_id)
            if row is None:
                raise NotFound(f"Restore session with id '{session_id}' was not found.")
            if row.owner_user_id != owner.user_id:
                raise Forbidden("This restore session was started under another logon.")
            state, kind = row.state, RestoreSessionType(row.type)
            org_id, at, org_name = row.organization_id, row.point_in_time, row.organization_name
            flags = (row.show_deleted, row.show_all_versions)
        if state != RestoreSessionState.Working.value:
            raise InvalidRequest(f"The restore session is {state}; start a new one with explore.")
        if org_id is None:
            raise InvalidRequest("The organization of this restore session was removed.")
        if wanted is not None and kind is not wanted:
            raise InvalidRequest(
                f"This is a {kind.value} restore session; it has no {TREE_NAMES[wanted]} "
                f"(explore with type {wanted.value} for those)."
            )
        live = self._touch(session_id)
        scope = Scope(str(org_id), at, show_deleted=flags[0], all_versions=flags[1])
        return SessionTree(
            session_id, kind, org_id, org_name, Explorer(self.wiring.catalog, scope, live.cursors)
        )

    def _touch(self, session_id: uuid.UUID) -> _Live:
        with self._lock:
            live = self._live.get(session_id)
            if live is None:
                live = self._live[session_id] = _Live()
                live.idle.set()
            live.last_activity = self._s.clock()
            return live

    def viewed(self, tree: SessionTree, obj: ObjectInfo) -> None:
        """The first look into a mailbox, OneDrive or site is a View event."""
        live = self._touch(tree.session_id)
        key = object_wire_id(obj)
        if key in live.viewed:
            return
        live.viewed.add(key)
        now = self._s.clock()
        self._event(
            tree.session_id,
            "View",
            "Success",
            now,
            now,
            f"Browsing {obj.name or key}",
            f"Opened {obj.name or key}.",
        )

    def credentials(self, tree: SessionTree) -> TenantCredentials:
        """The organization's application credentials: they do the writing of every restore."""
        return Organizations(self._s).credentials(tree.organization_id)

    def content(self, obj: ObjectInfo) -> ContentReader:
        return ContentReader(self.wiring.repositories, obj.repository_id)

    # ------------------------------------------------------------ operations and events
    async def operation(
        self, tree: SessionTree, kind: str, title: str, work: Awaitable[T], summary: Callable[[T], str]
    ) -> T:
        """Run one operation of the session and record it as one event (Success or Failed)."""
        self._begin(tree.session_id)
        start = self._s.clock()
        try:
            result = await work
        except BaseException as err:
            message = getattr(err, "message", None) or str(err) or type(err).__name__
            await in_thread(
                lambda: self._event(tree.session_id, kind, "Failed", start, self._s.clock(), title, message)
            )
            self._end(tree.session_id)
            raise
        await in_thread(
            lambda: self._event(
                tree.session_id, kind, "Success", start, self._s.clock(), title, summary(result)
            )
        )
        self._end(tree.session_id)
        return result

    def download(self, tree: SessionTree, kind: str, title: str, download: Download) -> Download:
        """A streamed output: in flight from its first byte, its event written when the stream ends
        (or fails, or the client leaves). A stream never started holds nothing open."""

        async def chunks() -> AsyncIterator[bytes]:
            self._begin(tree.session_id)
            start = self._s.clock()
            sent = 0
            status, message = "Failed", "The download was interrupted."
            try:
                async for chunk in download.chunks:
                    sent += len(chunk)
                    yield chunk
                status, message = "Success", f"{download.filename}: {sent} bytes."
            except RestoreOutputError as err:
                message = str(err)
                raise
            finally:
                end = self._s.clock()
                try:
                    await in_thread(
                        lambda: self._event(tree.session_id, kind, status, start, end, title, message)
                    )
                finally:
                    self._end(tree.session_id)

        return Download(download.filename, download.media_type, chunks(), download.size)

    def _begin(self, session_id: uuid.UUID) -> None:
        live = self._touch(session_id)
        with self._lock:
            live.in_flight += 1
            live.idle.clear()

    def _end(self, session_id: uuid.UUID) -> None:
        with self._lock:
            live = self._live.get(session_id)
            if live is None:
                return
            live.in_flight -= 1
            live.last_activity = self._s.clock()
            if live.in_flight <= 0:
                live.in_flight = 0
                live.idle.set()

    def _event(
        self,
        session_id: uuid.UUID,
        kind: str,
        status: str,
        start: datetime,
        end: datetime,
        title: str,
        message: str,
    ) -> None:
        with self._event_lock, self._s.unit_of_work() as db:
            order = db.scalar(
                select(func.max(RestoreSessionEvent.order)).where(
                    RestoreSessionEvent.restore_session_id == session_id
                )
            )
            db.add(
                RestoreSessionEvent(
                    id=uuid.uuid4(),
                    restore_session_id=session_id,
                    order=(order or 0) + 1,
                    type=kind,
                    status=status,
                    start_time=start,
                    end_time=end,
                    title=title[:1000],
                    message=message[:4000],
                )
            )

    # ------------------------------------------------------------ lifecycle
    def quiesce(self, session_id: uuid.UUID, timeout: float = 600.0) -> None:
        """Wait (blocking) until the session has no operation in flight; used by stop, which has
        already moved the session to Stopping."""
        with self._lock:
            live = self._live.get(session_id)
        if live is not None:
            live.idle.wait(timeout)
        # The session is Stopping: nothing new starts on it, so its in-memory state can go.
        self.forget(session_id)

    def forget(self, session_id: uuid.UUID) -> None:
        with self._lock:
            self._live.pop(session_id, None)

    def expire_idle(self) -> list[uuid.UUID]:
        """Stop every Working session idle for longer than the timeout; returns their ids."""
        now = self._s.clock()
        cutoff = now - self.wiring.idle_timeout
        limit = self.wiring.idle_timeout.total_seconds()
        stopped: list[uuid.UUID] = []
        with self._s.unit_of_work() as db:
            rows = list(
                db.scalars(
                    select(RestoreSession).where(RestoreSession.state == RestoreSessionState.Working.value)
                )
            )
            for row in rows:
                with self._lock:
                    live = self._live.get(row.id)
                    busy = live is not None and live.in_flight > 0
                    seen = None if live is None else live.last_activity
                if busy:
                    continue
                last = self._last_activity(db, row)
                if seen is not None:
                    # In-memory activity (reads record no events) moves the idle start forward.
                    last = max(last, seen)
                if last > cutoff:
                    continue
                row.state = RestoreSessionState.Stopped.value
                row.end_time = now
                order = db.scalar(
                    select(func.max(RestoreSessionEvent.order)).where(
                        RestoreSessionEvent.restore_session_id == row.id
                    )
                )
                minutes = int(limit // 60)
                text = f"Restore session stopped after {minutes} minutes without activity"
                db.add(
                    RestoreSessionEvent(
                        id=uuid.uuid4(),
                        restore_session_id=row.id,
                        order=(order or 0) + 1,
                        type="None",
                        status="Success",
                        start_time=now,
                        end_time=now,
                        title=text,
                        message=text + ".",
                    )
                )
                stopped.append(row.id)
        for session_id in stopped:
            self.forget(session_id)
        return stopped

    @staticmethod
    def _last_activity(db: Any, row: RestoreSession) -> datetime:
        latest = db.scalar(
            select(func.max(RestoreSessionEvent.end_time)).where(
                RestoreSessionEvent.restore_session_id == row.id
            )
        )
        return max(row.creation_time, latest) if latest is not None else row.creation_time

    async def run_expiry(self, every: float | None = None) -> None:
        """The server's background task: check for idle sessions periodically, forever."""
        period = every or max(1.0, min(60.0, self.wiring.idle_timeout.total_seconds() / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await in_thread(self.expire_idle)
            except Exception:  # a failed check must not end the task
                log.exception("checking idle restore sessions failed")
