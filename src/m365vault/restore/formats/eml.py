"""`saveToEml` (our extension): the item's original MIME, byte for byte, as a .eml file."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

from m365vault.restore.errors import NothingToSave
from m365vault.restore.formats.download import Chunks, Download, MailItem, iterate
from m365vault.restore.formats.names import UniqueNames, safe_filename
from m365vault.restore.formats.zipstream import ZipEntry, ZipFile, zip_download

EML_MEDIA_TYPE = "message/rfc822"


def eml_filename(subject: str | None) -> str:
    return safe_filename(subject, ".eml", fallback="message")


def save_to_eml(subject: str | None, mime: Chunks, size: int | None = None) -> Download:
    """The MIME streamed out as it was backed up; nothing is parsed or rewritten."""
    return Download(eml_filename(subject), EML_MEDIA_TYPE, iterate(mime), size)


def save_many_to_eml(
    items: Iterable[MailItem] | AsyncIterable[MailItem], *, archive_name: str = "messages.zip"
) -> Download:
    """Several items as a streamed ZIP of .eml files, each read only when the ZIP reaches it. An
    async iterable is consumed as the ZIP is written (the caller checked it is not empty)."""
    if isinstance(items, AsyncIterable):
        return zip_download(_entries(items), archive_name)
    names = UniqueNames()
    entries: list[ZipEntry] = [
        ZipFile(names.claim(eml_filename(item.subject)), item.open, item.received) for item in items
    ]
    if not entries:
        raise NothingToSave("no item was selected to save")
    return zip_download(entries, archive_name)


async def _entries(items: AsyncIterable[MailItem]) -> AsyncIterator[ZipEntry]:
    names = UniqueNames()
    async for item in items:
        yield ZipFile(names.claim(eml_filename(item.subject)), item.open, item.received)
