"""Errors the catalog raises; each leaves the database unchanged (the transaction rolls back)."""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every catalog error."""


class OutOfOrderWrite(CatalogError):
    """A write is older than history already recorded for the entry (a run replayed after a newer
    one). Applying it would rewrite the past, so the whole page is refused."""


class UnknownObject(CatalogError):
    """The object id does not exist in the catalog."""


class InvalidPolicy(CatalogError):
    """A retention policy whose fields do not describe a period or a schedule."""
