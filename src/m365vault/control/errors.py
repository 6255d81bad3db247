"""Domain errors raised by the use cases. The API maps each class to one status code, in one place."""

from __future__ import annotations


class ControlError(Exception):
    """Base class; `message` is safe to show to the caller (never holds a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ControlError):
    """The object named by an id does not exist (or is not visible to the caller)."""


class InvalidRequest(ControlError):
    """The request breaks a rule: a missing field, a reference to nothing, a name already taken,
    an object still in use, an action that does not fit the current state."""


class Forbidden(ControlError):
    """The caller may not touch this object (e.g. another account's restore session)."""


class NotAvailable(ControlError):
    """The part of the product that would do this is not wired into this server."""


class AuthenticationFailed(ControlError):
    """Wrong credentials or an unusable token."""


class LoginThrottled(ControlError):
    """Too many failed logins for this account or address; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
