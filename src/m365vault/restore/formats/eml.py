"""`saveToEml` (our extension): the item's original MIME, byte for byte, as a .eml file."""

from __future__ import annotations

from m365vault.restore.formats.download import Chunks, Download, iterate
from m365vault.restore.formats.names import safe_filename

EML_MEDIA_TYPE = "message/rfc822"


def eml_filename(subject: str | None) -> str:
    return safe_filename(subject, ".eml", fallback="message")


def save_to_eml(subject: str | None, mime: Chunks, size: int | None = None) -> Download:
    """The MIME streamed out as it was backed up; nothing is parsed or rewritten."""
    return Download(eml_filename(subject), EML_MEDIA_TYPE, iterate(mime), size)
