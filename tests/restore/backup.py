"""A stand-in for the backup engine in restore tests: writes content into a real repository and
versions into the real catalog through their public APIs, at chosen run times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine

from m365vault.catalog import (
    CatalogWriter,
    EndReason,
    EntryKind,
    EntryMetadata,
    GoneWrite,
    ObjectKind,
    ObjectRef,
    PageWrite,
    VersionWrite,
)
from m365vault.repository import Repository


def make_mime(
    subject: str,
    body: str,
    *,
    sender: str = "alice@contoso.com",
    to: str = "bob@contoso.com",
    attachment: bytes | None = None,
    date: str = "Mon, 02 Mar 2026 08:00:00 +0000",
) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = f"<{abs(hash((subject, body))) % 10**12}@contoso.com>"
    message.set_content(body)
    if attachment is not None:
        message.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="data.bin"
        )
    return message.as_bytes()


@dataclass
class Entry:
    """One entry of a page: kind, parent and metadata; `content` is saved to the repository."""

    external_id: str
    kind: EntryKind
    parent: str | None = None
    content: bytes | None = None
    name: str | None = None
    subject: str | None = None
    item_class: str | None = None
    sender: str | None = None
    to: tuple[str, ...] | None = None
    received_at: datetime | None = None
    modified_at: datetime | None = None
    extras: dict[str, Any] | None = None


@dataclass
class Backup:
    engine: Engine
    repository: Repository
    organization_id: str
    repository_id: str
    writer: CatalogWriter = field(init=False)

    def __post_init__(self) -> None:
        self.writer = CatalogWriter(self.engine)

    def object(self, kind: ObjectKind, external_id: str, at: datetime, **described: Any) -> ObjectRef:
        return self.writer.ensure_object(
            self.organization_id, self.repository_id, kind, external_id, seen_at=at, **described
        )

    async def page(
        self,
        obj: ObjectRef,
        at: datetime,
        entries: Sequence[Entry] = (),
        gone: Sequence[str] = (),
        moved_out: Sequence[str] = (),
    ) -> None:
        upserts = []
        for e in entries:
            ref = await self.repository.save_item(e.content) if e.content is not None else None
            meta = EntryMetadata(
                name=e.name,
                item_class=e.item_class,
                subject=e.subject,
                sender=e.sender,
                to=e.to,
                received_at=e.received_at,
                modified_at=e.modified_at,
                size=len(e.content) if e.content is not None else None,
                extras=e.extras,
            )
            upserts.append(VersionWrite(e.external_id, e.kind, e.parent, meta, ref))
        await self.repository.flush()
        gones = [GoneWrite(g, EndReason.DELETED, with_contents=True) for g in gone]
        gones += [GoneWrite(g, EndReason.MOVED) for g in moved_out]
        self.writer.apply_page(obj.id, PageWrite(run_time=at, upserts=tuple(upserts), gones=tuple(gones)))
        self.writer.record_restore_point(obj.id, at)
