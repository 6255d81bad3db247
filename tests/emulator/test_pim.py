"""Calendar and contacts with their delta (graph-protocol.md §3.4)."""

from __future__ import annotations

import httpx

from tests.emulator.conftest import drain


def test_calendar_view_delta_window_and_new_event(graph: httpx.Client, mailbox_user: dict) -> None:
    uid = mailbox_user["id"]
    cals = graph.get(f"/users/{uid}/calendars").json()["value"]
    assert cals[0]["isDefaultCalendar"] is True
    everything = graph.get(f"/users/{uid}/calendars/{cals[0]['id']}/events", params={"$top": "100"}).json()[
        "value"
    ]
    params = {"startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}
    items, link, _ = drain(
        graph, f"/users/{uid}/calendarView/delta", {"Prefer": "odata.maxpagesize=2"}, params
    )
    assert len(items) == len(everything) and all(e["@odata.type"] == "#microsoft.graph.event" for e in items)
    narrow, _, _ = drain(
        graph,
        f"/users/{uid}/calendarView/delta",
        params={"startDateTime": "2000-01-01T00:00:00Z", "endDateTime": "2000-02-01T00:00:00Z"},
    )
    assert narrow == []
    assert graph.get(f"/users/{uid}/calendarView/delta").status_code == 400
    ev = graph.post(
        f"/users/{uid}/events",
        json={
            "subject": "Restored meeting",
            "start": {"dateTime": "2026-03-01T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-01T11:00:00", "timeZone": "UTC"},
        },
    )
    assert ev.status_code == 201
    changes, _, _ = drain(graph, link)
    assert [c["subject"] for c in changes] == ["Restored meeting"]
    assert (
        graph.get(f"/users/{uid}/events/{ev.json()['id']}")
        .json()["start"]["dateTime"]
        .startswith("2026-03-01T10")
    )


def test_contact_folders_and_contact_delta(graph: httpx.Client, mailbox_user: dict) -> None:
    uid = mailbox_user["id"]
    folders, _, _ = drain(graph, f"/users/{uid}/contactFolders/delta")
    assert {f["displayName"] for f in folders} == {"Contacts", "Suppliers"}
    supplier = next(f for f in folders if f["displayName"] == "Suppliers")
    items, link, _ = drain(graph, f"/users/{uid}/contactFolders/{supplier['id']}/contacts/delta")
    listed = graph.get(
        f"/users/{uid}/contactFolders/{supplier['id']}/contacts", params={"$top": "100"}
    ).json()
    assert len(items) == len(listed["value"]) > 0
    assert (
        graph.get(f"/users/{uid}/contacts/{items[0]['id']}").json()["displayName"] == items[0]["displayName"]
    )
    c = graph.post(
        f"/users/{uid}/contactFolders/{supplier['id']}/contacts",
        json={
            "givenName": "Zed",
            "surname": "Ray",
            "displayName": "Zed Ray",
            "emailAddresses": [{"address": "zed@example.com", "name": "Zed Ray"}],
        },
    )
    assert c.status_code == 201
    changes, _, _ = drain(graph, link)
    assert [x["id"] for x in changes] == [c.json()["id"]]
    default = graph.get(f"/users/{uid}/contacts").json()["value"]
    assert default and all(x["parentFolderId"] != supplier["id"] for x in default)


def test_deleted_event_is_a_tombstone(graph: httpx.Client, mailbox_user: dict) -> None:
    uid = mailbox_user["id"]
    cal = graph.get(f"/users/{uid}/calendar").json()["id"]
    params = {"startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}
    _, link, _ = drain(graph, f"/users/{uid}/calendarView/delta", params=params)
    ev = graph.post(f"/users/{uid}/calendars/{cal}/events", json={
        "subject": "to delete", "start": {"dateTime": "2026-05-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-05-01T10:30:00", "timeZone": "UTC"}}).json()  # fmt: skip
    assert graph.delete(f"/users/{uid}/events/{ev['id']}").status_code == 204
    changes, _, _ = drain(graph, link)
    assert changes == [
        {"@odata.type": "#microsoft.graph.event", "id": ev["id"], "@removed": {"reason": "deleted"}}
    ]
    assert graph.post(f"/users/{uid}/events", json={"subject": "no dates"}).status_code == 400
