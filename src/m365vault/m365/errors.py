"""Classified Graph failures.

Callers branch on the class, never on Graph's `message` text (Microsoft says it may change). The
classes follow the reference's classification (graph-protocol.md §7.4): retryable failures end as
`GraphThrottled` / `GraphTransient` once the retry budget is spent; `DeltaResyncRequired` tells a
delta reader to start a full round; `GraphNotFound` and `GraphItemUnreadable` let a backup skip one
item or resource and report it; `GraphAuthError` and `GraphForbidden` are configuration problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

# Codes (compared case-insensitively) that mean "the delta state is gone, enumerate again".
RESYNC_CODES = frozenset(
    code.lower()
    for code in (
        "syncStateNotFound",
        "SyncStateInvalid",
        "resyncRequired",
        "resyncChangesApplyDifferences",
        "resyncChangesUploadDifferences",
        "resyncApplyDifferences",
        "resyncUploadDifferences",
    )
)
# Codes that say the user has no usable Exchange mailbox (skip the resource, not a failure).
MAILBOX_UNAVAILABLE_CODES = frozenset(
    code.lower() for code in ("MailboxNotEnabledForRESTAPI", "ErrorInvalidUser", "ResourceNotFound")
)
# Item-level read failures that retrying will not fix: report the item and move on.
UNREADABLE_ITEM_CODES = frozenset(
    code.lower()
    for code in ("ErrorCorruptData", "ErrorCannotOpenFileAttachment", "malwareDetected", "virusSuspicious")
)


class GraphError(Exception):
    """A Graph request failed. `reason` is a one-line human explanation (safe to show users)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        self.request_id = request_id
        self.method = method
        self.url = url

    def __str__(self) -> str:
        parts = [self.reason]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.request_id:
            parts.append(f"request-id {self.request_id}")
        return " | ".join(parts)


class GraphAuthError(GraphError):
    """No usable token: bad client id / secret / certificate, unknown tenant, or 401 after re-auth."""


class GraphForbidden(GraphError):
    """403: the app lacks a permission or an access policy blocks it (a configuration problem)."""


class GraphNotFound(GraphError):
    """404 (or an Outlook 'not found' code): the item or resource does not exist (any more)."""


class GraphMailboxUnavailable(GraphNotFound):
    """The user has no Exchange Online mailbox reachable through Graph (on-premises, inactive, none)."""


class GraphConflict(GraphError):
    """409 / 412: a name is taken (conflictBehavior=fail) or an eTag no longer matches."""


class GraphItemUnreadable(GraphError):
    """The service cannot produce this item (corrupt data, malware): skip it and report it."""


class GraphPermanent(GraphError):
    """Any other 4xx/5xx that retrying will not fix (bad request, too large, unsupported)."""


class GraphThrottled(GraphError):
    """Still throttled (429 / 503 with Retry-After) after the retry budget; resume later."""


class GraphTransient(GraphError):
    """5xx or dropped connections that outlasted the retry budget; the operation can be retried."""


class GraphStreamInterrupted(GraphTransient):
    """A body stream broke after bytes were already handed to the caller and cannot be resumed."""

    def __init__(self, reason: str, *, bytes_delivered: int, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.bytes_delivered = bytes_delivered


class GraphAuthUnavailable(GraphAuthError, GraphTransient):
    """The token service could not be reached or failed (5xx): an auth problem for the admin who
    is adding a tenant, a transient one for a backup that has been running fine."""


class DeltaResyncRequired(GraphError):
    """The delta token or round is no longer valid (410, syncStateNotFound, resyncRequired).

    `location` is the fresh initial URL the service offered (drive / list / directory 410s), if any.
    """

    def __init__(self, reason: str, *, location: str | None = None, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.location = location


def error_code_chain(body: Any) -> list[str]:
    """Every `code` in a Graph error body, outermost first (innerError nests; spelling varies)."""
    codes: list[str] = []
    node = body.get("error") if isinstance(body, Mapping) else None
    while isinstance(node, Mapping):
        code = node.get("code")
        if isinstance(code, str) and code:
            codes.append(code)
        node = node.get("innerError") or node.get("innererror")
    return codes


def error_message(body: Any) -> str | None:
    node = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(node, Mapping) and isinstance(node.get("message"), str):
        return str(node["message"])
    return None


def safe_url(url: httpx.URL | str) -> str:
    """The URL without its query: pre-authenticated URLs carry credentials (tempauth, authtoken)."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(query=None, fragment=None))


def classify_response(response: httpx.Response, body: Any) -> GraphError:
    """Map a non-success Graph response to its error class (after retries are exhausted)."""
    status = response.status_code
    codes = error_code_chain(body)
    lowered = [c.lower() for c in codes]
    code = codes[0] if codes else None
    message = error_message(body) or response.reason_phrase or "no message"
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "request_id": response.headers.get("request-id"),
        "method": response.request.method if _has_request(response) else None,
        "url": safe_url(response.request.url) if _has_request(response) else None,
    }
    if status == 410 or any(c in RESYNC_CODES for c in lowered):
        location = response.headers.get("location")
        return DeltaResyncRequired(f"delta state expired: {message}", location=location, **common)
    if any(c in UNREADABLE_ITEM_CODES for c in lowered):
        return GraphItemUnreadable(f"item cannot be read: {message}", **common)
    if status == 401:
        return GraphAuthError(f"authentication rejected: {message}", **common)
    if status == 403:
        return GraphForbidden(f"access denied: {message}", **common)
    if status == 404:
        if any(c in MAILBOX_UNAVAILABLE_CODES for c in lowered):
            return GraphMailboxUnavailable(f"mailbox not available: {message}", **common)
        return GraphNotFound(f"not found: {message}", **common)
    if status in (409, 412):
        return GraphConflict(f"conflict: {message}", **common)
    if status in (429, 509) or (status == 503 and "retry-after" in response.headers):
        return GraphThrottled(f"throttled: {message}", **common)
    if status >= 500:
        return GraphTransient(f"service error: {message}", **common)
    return GraphPermanent(f"request rejected: {message}", **common)


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 (raises RuntimeError when unset)
    except RuntimeError:
        return False
    return True
