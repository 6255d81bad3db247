"""Graph error bodies (graph-protocol.md §7) raised anywhere and rendered in one place."""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    """An error answered to the client in Graph's OData JSON shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner_code: str | None = None,
        with_inner: bool = True,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner_code = inner_code
        # Some Exchange errors omit innerError (MIME base64 error, ApplicationThrottled).
        self.with_inner = with_inner

    def body(self, date: str, request_id: str, client_request_id: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.with_inner:
            inner: dict[str, Any] = {"date": date.rstrip("Z"), "request-id": request_id}
            if client_request_id:
                inner["client-request-id"] = client_request_id
            if self.inner_code:
                inner["code"] = self.inner_code
            error["innerError"] = inner
        return {"error": error}


def not_found_drive(what: str = "The resource could not be found.") -> GraphError:
    return GraphError(404, "itemNotFound", what)


def not_found_mail() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
