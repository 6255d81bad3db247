"""Classification of the documented Graph error bodies (§7)."""

from __future__ import annotations

import httpx
import pytest

from m365vault.m365.errors import (
    DeltaResyncRequired,
    GraphConflict,
    GraphError,
    GraphForbidden,
    GraphItemUnreadable,
    GraphMailboxUnavailable,
    GraphNotFound,
    GraphPermanent,
    GraphThrottled,
    GraphTransient,
    classify_response,
    error_code_chain,
)
from tests.m365.fakes import graph_error


def classify(response: httpx.Response) -> GraphError:
    response.request = httpx.Request("GET", "https://graph.microsoft.com/v1.0/x?token=SECRET")
    return classify_response(response, response.json() if response.content else None)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (410, "SyncStateNotFound", DeltaResyncRequired),
        (400, "syncStateNotFound", DeltaResyncRequired),  # "a 4xx with code syncStateNotFound"
        (410, "resyncRequired", DeltaResyncRequired),
        (404, "MailboxNotEnabledForRESTAPI", GraphMailboxUnavailable),
        (404, "ErrorInvalidUser", GraphMailboxUnavailable),
        (404, "itemNotFound", GraphNotFound),
        (404, "ErrorItemNotFound", GraphNotFound),
        (403, "ErrorAccessDenied", GraphForbidden),
        (409, "nameAlreadyExists", GraphConflict),
        (412, "resourceModified", GraphConflict),
        (500, "ErrorCorruptData", GraphItemUnreadable),
        (500, "ErrorCannotOpenFileAttachment", GraphItemUnreadable),
        (429, "ApplicationThrottled", GraphThrottled),
        (500, "generalException", GraphTransient),
        (400, "ErrorMimeContentInvalidBase64String", GraphPermanent),
        (413, "BadRequest", GraphPermanent),
    ],
)
def test_documented_codes_map_to_classes(status: int, code: str, expected: type[GraphError]) -> None:
    error = classify(graph_error(status, code))
    assert type(error) is expected
    assert error.code == code and error.status == status and error.request_id == f"req-{code}"
    assert "SECRET" not in str(error.url)


def test_inner_error_codes_are_walked() -> None:
    body = {
        "error": {
            "code": "invalidRequest",
            "innererror": {"code": "resyncRequired", "innerError": {"code": "x"}},
        }
    }
    assert error_code_chain(body) == ["invalidRequest", "resyncRequired", "x"]
    assert isinstance(classify(httpx.Response(400, json=body)), DeltaResyncRequired)


def test_410_keeps_the_location_and_empty_503_is_transient() -> None:
    gone = classify(
        graph_error(
            410,
            "resyncRequired",
            headers={"Location": "https://graph.microsoft.com/v1.0/drives/d/root/delta?token=n"},
        )
    )
    assert isinstance(gone, DeltaResyncRequired) and gone.location and gone.location.endswith("token=n")
    assert isinstance(classify(httpx.Response(503)), GraphTransient)
    assert isinstance(classify(httpx.Response(503, headers={"Retry-After": "5"})), GraphThrottled)
