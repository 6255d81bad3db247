"""What restore sends back for calendar items, contacts and list items: the backed-up Graph JSON
without what Graph or SharePoint computes; content that is not such JSON is refused clearly."""

from __future__ import annotations

import json

import pytest

from m365vault.restore.list_items import writable_fields
from m365vault.restore.outlook_items import create_body, parse_item, restorable_kind


def test_event_body_keeps_what_the_user_set_and_drops_what_graph_computes() -> None:
    event = {
        "@odata.etag": 'W/"x"',
        "id": "AAMk1",
        "changeKey": "ck",
        "createdDateTime": "2026-01-01T00:00:00Z",
        "lastModifiedDateTime": "2026-01-02T00:00:00Z",
        "iCalUId": "uid",
        "organizer": {"emailAddress": {"address": "a@contoso.com"}},
        "calendar@odata.associationLink": None,
        "subject": "Review",
        "body": {"contentType": "html", "content": "<p>x</p>"},
        "start": {"dateTime": "2026-03-10T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-10T10:00:00.0000000", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": "b@contoso.com"}, "type": "required"}],
        "recurrence": None,
    }
    assert create_body(event) == {
        k: event[k] for k in ("subject", "body", "start", "end", "attendees", "recurrence")
    }


def test_list_item_fields_leave_out_computed_columns() -> None:
    item = {
        "id": "7",
        "eTag": '"g,3"',
        "fields": {
            "@odata.etag": '"g,3"',
            "id": "7",
            "Title": "Task",
            "Status": "Open",
            "Modified": "2026-01-02T00:00:00Z",
            "Created": "2026-01-01T00:00:00Z",
            "AuthorLookupId": "6",
            "_UIVersionString": "3.0",
            "ContentType": "Item",
        },
    }
    assert writable_fields(item) == {"Title": "Task", "Status": "Open"}
    with pytest.raises(ValueError, match="no fields"):
        writable_fields({"id": "7"})


def test_content_that_is_not_graph_json_is_refused_with_the_item_named() -> None:
    assert parse_item(json.dumps({"id": "x"}).encode(), "Review") == {"id": "x"}
    for raw in (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(ValueError, match="Review"):
            parse_item(raw, "Review")


@pytest.mark.parametrize(
    ("item_class", "kind"),
    [
        ("IPM.Appointment", "event"),
        ("IPM.Appointment.Occurrence", "event"),
        ("IPM.Contact", "contact"),
        ("IPM.Contact.DistList", None),
        ("IPM.Note", None),
        (None, None),
    ],
)
def test_which_classes_go_through_the_json_routes(item_class: str | None, kind: str | None) -> None:
    assert restorable_kind(item_class) == kind
