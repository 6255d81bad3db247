"""File names that are safe on every platform, derived from subjects and document names."""

from __future__ import annotations

import re
import unicodedata

# Characters Windows refuses in names, plus the path separators of every platform.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_SPACES = re.compile(r"\s+")
# Device names Windows reserves whatever the extension.
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{port}{i}" for port in ("COM", "LPT") for i in range(1, 10)}
# Most file systems allow 255 bytes per name; keep room for " (123)" added by deduplication.
_MAX_NAME_BYTES = 200


def safe_filename(text: str | None, extension: str = "", fallback: str = "item") -> str:
    """A file name made from `text` (a mail subject, a document name) with `extension` added.

    Control and reserved characters become `_`, runs of spaces one space, leading and trailing
    dots and spaces go, Windows device names get a `_` prefix, and the UTF-8 length is bounded.
    """
    name = unicodedata.normalize("NFC", text or "")
    # Whitespace first: folded subjects carry tabs and line breaks that are only spaces.
    name = _FORBIDDEN.sub("_", _SPACES.sub(" ", name)).strip(" .")
    if not name or set(name) == {"_"}:
        name = fallback
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    budget = _MAX_NAME_BYTES - len(extension.encode("utf-8"))
    encoded = name.encode("utf-8")
    if len(encoded) > budget:
        name = encoded[:budget].decode("utf-8", "ignore").rstrip(" .") or fallback
    return name + extension


def safe_path(parts: list[str]) -> str:
    """A relative archive path made of safe names (no `..`, no absolute paths)."""
    return "/".join(safe_filename(part, fallback="_") for part in parts)


class UniqueNames:
    """Hands out names once: the second `Report.msg` becomes `Report (2).msg` (case-insensitive)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        stem, dot, extension = name.rpartition(".")
        if not dot or "/" in extension:
            stem, extension = name, ""
        else:
            extension = "." + extension
        candidate, counter = name, 1
        while candidate.casefold() in self._taken:
            counter += 1
            candidate = f"{stem} ({counter}){extension}"
        self._taken.add(candidate.casefold())
        return candidate
