"""Errors of the restore outputs; each carries a message fit to show an operator."""

from __future__ import annotations


class RestoreOutputError(Exception):
    """An output could not be produced; the message says why."""


class ItemTooLarge(RestoreOutputError):
    """An item exceeds the size an output accepts (a .msg held in memory, a mail to send)."""


class NothingToSave(RestoreOutputError):
    """A save or export was asked for no item at all."""


class InvalidMailSettings(RestoreOutputError, ValueError):
    """The SMTP settings or addresses cannot be used as given."""


class MailDeliveryError(RestoreOutputError):
    """The SMTP server refused or failed the delivery."""
