"""Errors the repository raises; backends have their own in backends.base."""

from __future__ import annotations


class RepositoryError(Exception):
    """Something is wrong with the repository or its use."""


class WrongPassword(RepositoryError):
    """No key file opens with the password (or key) given."""


class UnsupportedFormat(RepositoryError):
    """The repository uses a format version this release cannot read."""


class IntegrityError(RepositoryError):
    """Stored data failed authentication or does not match what the index says."""


class UnknownRef(RepositoryError):
    """A ref is malformed or names a blob the index does not know."""
