"""Calendar events and contacts (graph-protocol.md §3.4): lists, calendarView delta, contact folder and
contact delta, and creation for restore. Outlook delta semantics as for mail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from m365vault.emulator import generate, ids
from m365vault.emulator.clock import iso, parse_iso
from m365vault.emulator.delta import View
from m365vault.emulator.errors import GraphError, not_found_mail
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.outlook import item_head
from m365vault.emulator.tenant import User
from m365vault.emulator.world import World

K_EVENT, K_CONTACT_FOLDER, K_CONTACT, K_CALENDAR, K_NEW_EVENT, K_NEW_CONTACT = 3, 4, 5, 7, 13, 15
CONTACT_FOLDERS = ("Contacts", "Suppliers")


def _dt(ts: float) -> dict[str, str]:
    return {"dateTime": iso(ts).rstrip("Z") + ".0000000", "timeZone": "UTC"}


def _outlook_delta(
    w: World,
    req: Req,
    view: View,
    link_path: str,
    render: Callable[[str, dict[str, Any]], Any],
    odata_type: str,
    options: dict[str, Any],
    keep: Callable[[dict[str, Any], dict[str, Any]], bool],
) -> Resp:
    token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
    options = {**options, "top": req.query.get("$top")}
    payload, options = w.delta.resume_outlook(view, token, options)
    size, applied = w.delta_size(req, options, 10, prefer=True)
    page = w.delta.page(view, payload, size, options)
    body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#Collection({odata_type})"}
    if page.next_token:
        body["@odata.nextLink"] = w.link(req, link_path, **{"$skiptoken": page.next_token})
    else:
        body["@odata.deltaLink"] = w.link(req, link_path, **{"$deltatoken": page.delta_token or ""})
    body["value"] = [
        render(i, s)
        if s is not None
        else {"@odata.type": f"#microsoft.graph.{odata_type}", "id": i, "@removed": {"reason": "deleted"}}
        for i, s in page.items
        if s is None or keep(s, options)
    ]
    return Resp(200, body, {"Preference-Applied": f"odata.maxpagesize={size}"} if applied else {})


def register(router: Router, w: World) -> None:  # noqa: C901, PLR0915 (one route table)
    def calendar_id(user: User) -> str:
        return ids.make(w.seed, "AAMk", K_CALENDAR, user.index, 0)

    def event_view(user: User) -> View:
        return View(
            f"ev:{user.index}",
            w.tenant.spec.events if user.purpose == "user" else 0,
            lambda i: ids.make(w.seed, "AAMk", K_EVENT, user.index, i),
            lambda i: {**generate.event(w.tenant, user, i), "_user": user.index},
        )

    def event(user: User, eid: str) -> dict[str, Any]:
        found = w.store.item(eid)
        if found is not None:
            if found[1] is None or found[1].get("_user") != user.index:
                raise not_found_mail()
            return found[1]
        parsed = ids.parse(w.seed, "AAMk", eid)
        view = event_view(user)
        if parsed and parsed[0] == K_EVENT and parsed[1][0] == user.index and parsed[1][1] < view.base_count:
            return view.base_state(parsed[1][1])
        raise not_found_mail()

    def event_json(eid: str, s: dict[str, Any]) -> dict[str, Any]:
        return {
            **item_head("#microsoft.graph.event", eid, s),
            "subject": s["subject"],
            "body": s["body"],
            "start": _dt(s["start"]),
            "end": _dt(s["end"]),
            "isAllDay": s["isAllDay"],
            "location": s["location"],
            "organizer": s["organizer"],
            "attendees": s["attendees"],
            "showAs": s["showAs"],
            "importance": s["importance"],
            "sensitivity": s["sensitivity"],
            "type": s["type"],
            "isCancelled": False,
            "calendar@odata.associationLink": None,
        }

    def events_all(user: User) -> list[tuple[str, dict[str, Any]]]:
        view = event_view(user)
        touched = w.store.touched_in(view.key)
        base = [(view.base_id(i), view.base_state(i)) for i in range(view.base_count)]
        return [(i, s) for i, s in base if i not in touched] + list(w.store.live_in(view.key))

    @router.route("GET", "users/{user}/calendars")
    def calendars(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return Resp(200, {"value": [calendar_json(user)]})

    def calendar_json(user: User) -> dict[str, Any]:
        return {
            "id": calendar_id(user),
            "name": "Calendar",
            "color": "auto",
            "isDefaultCalendar": True,
            "canEdit": True,
            "owner": {"name": user.display_name, "address": user.mail},
        }

    @router.route("GET", "users/{user}/calendar")
    def default_calendar(req: Req) -> Resp:
        return Resp(200, calendar_json(w.mailbox_user(req.params["user"])))

    def events_page(req: Req, user: User) -> Resp:
        rows = events_all(user)
        size, _ = w.page_size(req, 10, 1000, prefer=True)
        skip = int(req.query.get("$skip", "0") or 0)
        body: dict[str, Any] = {
            "value": [w.pick(event_json(i, s), req.select()) for i, s in rows[skip : skip + size]]
        }
        if skip + size < len(rows):
            body["@odata.nextLink"] = w.link(req, req.path, **{**req.query, "$skip": str(skip + size)})
        return Resp(200, body)

    def check_calendar(user: User, key: str) -> None:
        if key != calendar_id(user):
            raise not_found_mail()

    @router.route("GET", "users/{user}/events")
    def list_events(req: Req) -> Resp:
        return events_page(req, w.mailbox_user(req.params["user"]))

    @router.route("GET", "users/{user}/calendars/{calendar}/events")
    def list_calendar_events(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        check_calendar(user, req.params["calendar"])
        return events_page(req, user)

    @router.route("GET", "users/{user}/events/{event}")
    def get_event(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return Resp(
            200, w.pick(event_json(req.params["event"], event(user, req.params["event"])), req.select())
        )

    def create_event(req: Req, user: User) -> Resp:
        data = req.json_object()
        try:
            start = parse_iso(data["start"]["dateTime"].split(".")[0] + "Z")
            end = parse_iso(data["end"]["dateTime"].split(".")[0] + "Z")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise GraphError(400, "ErrorInvalidRequest", "start and end with dateTime are required.") from exc
        now = w.now()
        eid = ids.make(w.seed, "AAMk", K_NEW_EVENT, user.index, w.store.counter("event"))
        state = {
            "subject": str(data.get("subject", "")),
            "body": data.get("body") or {"contentType": "text", "content": ""},
            "start": start,
            "end": end,
            "isAllDay": bool(data.get("isAllDay")),
            "location": data.get("location") or {"displayName": ""},
            "organizer": {"emailAddress": {"name": user.display_name, "address": user.mail}},
            "attendees": data.get("attendees") or [],
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "changeKey": generate.change_key(eid, now),
            "showAs": data.get("showAs", "busy"),
            "importance": data.get("importance", "normal"),
            "sensitivity": data.get("sensitivity", "normal"),
            "type": "singleInstance",
            "_user": user.index,
        }
        w.store.write(now, [(f"ev:{user.index}", eid, state, None)])
        return Resp(201, event_json(eid, state))

    @router.route("POST", "users/{user}/events")
    def post_event(req: Req) -> Resp:
        return create_event(req, w.mailbox_user(req.params["user"]))

    @router.route("POST", "users/{user}/calendars/{calendar}/events")
    def post_calendar_event(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        check_calendar(user, req.params["calendar"])
        return create_event(req, user)

    @router.route("DELETE", "users/{user}/events/{event}")
    def delete_event(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        event(user, req.params["event"])
        w.store.write(w.now(), [(f"ev:{user.index}", req.params["event"], None, None)])
        return Resp(204)

    @router.route("GET", "users/{user}/calendarView/delta")
    def calendar_view_delta(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        options: dict[str, Any] = {}
        if not (req.query.get("$deltatoken") or req.query.get("$skiptoken")):
            try:
                options = {
                    "from": parse_iso(req.query["startDateTime"]),
                    "to": parse_iso(req.query["endDateTime"]),
                }
            except (KeyError, ValueError) as exc:
                raise GraphError(
                    400, "ErrorInvalidParameter", "startDateTime and endDateTime are required."
                ) from exc
        return _outlook_delta(
            w,
            req,
            event_view(user),
            f"/users/{user.id}/calendarView/delta",
            event_json,
            "event",
            options,
            lambda s, o: s["end"] >= o["from"] and s["start"] <= o["to"],
        )

    # ------------------------------------------------------------------ contacts
    def contact_folder_id(user: User, n: int) -> str:
        return ids.make(w.seed, "AAMk", K_CONTACT_FOLDER, user.index, n)

    def contact_folder(user: User, key: str) -> int:
        parsed = ids.parse(w.seed, "AAMk", key)
        if key.lower() == "contacts":
            return 0
        if (
            parsed
            and parsed[0] == K_CONTACT_FOLDER
            and parsed[1][0] == user.index
            and parsed[1][1] < len(CONTACT_FOLDERS)
        ):
            return parsed[1][1]
        raise not_found_mail()

    def contact_view(user: User, n: int) -> View:
        count = w.tenant.spec.contacts // (1 + n) if user.purpose == "user" else 0
        return View(
            f"c:{user.index}:{n}",
            count,
            lambda i: ids.make(w.seed, "AAMk", K_CONTACT, user.index, n, i),
            lambda i: {
                **generate.contact(w.tenant, user, i + 1000 * n),
                "_user": user.index,
                "parentFolderId": contact_folder_id(user, n),
            },
        )

    def contact_json(cid: str, s: dict[str, Any]) -> dict[str, Any]:
        return {
            **item_head("#microsoft.graph.contact", cid, s),
            "parentFolderId": s["parentFolderId"],
            **{
                k: s.get(k)
                for k in (
                    "givenName",
                    "surname",
                    "displayName",
                    "emailAddresses",
                    "businessPhones",
                    "companyName",
                    "jobTitle",
                )
            },
        }

    def folder_json(user: User, n: int) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.contactFolder",
            "id": contact_folder_id(user, n),
            "displayName": CONTACT_FOLDERS[n],
            "parentFolderId": contact_folder_id(user, 0) if n else None,
        }

    @router.route("GET", "users/{user}/contactFolders")
    def contact_folders(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return Resp(200, {"value": [folder_json(user, n) for n in range(len(CONTACT_FOLDERS))]})

    @router.route("GET", "users/{user}/contactFolders/delta")
    def contact_folder_delta(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        view = View(
            f"cf:{user.index}",
            len(CONTACT_FOLDERS),
            lambda i: contact_folder_id(user, i),
            lambda i: folder_json(user, i),
        )
        return _outlook_delta(
            w,
            req,
            view,
            f"/users/{user.id}/contactFolders/delta",
            lambda i, s: s,
            "contactFolder",
            {},
            lambda s, o: True,
        )

    def contacts_page(req: Req, user: User, n: int) -> Resp:
        view = contact_view(user, n)
        touched = w.store.touched_in(view.key)
        rows = [(view.base_id(i), view.base_state(i)) for i in range(view.base_count)]
        rows = [(i, s) for i, s in rows if i not in touched] + list(w.store.live_in(view.key))
        size, _ = w.page_size(req, 10, 1000, prefer=True)
        skip = int(req.query.get("$skip", "0") or 0)
        body: dict[str, Any] = {
            "value": [w.pick(contact_json(i, s), req.select()) for i, s in rows[skip : skip + size]]
        }
        if skip + size < len(rows):
            body["@odata.nextLink"] = w.link(req, req.path, **{**req.query, "$skip": str(skip + size)})
        return Resp(200, body)

    @router.route("GET", "users/{user}/contacts")
    def default_contacts(req: Req) -> Resp:
        return contacts_page(req, w.mailbox_user(req.params["user"]), 0)

    @router.route("GET", "users/{user}/contactFolders/{folder}/contacts")
    def folder_contacts(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return contacts_page(req, user, contact_folder(user, req.params["folder"]))

    @router.route("GET", "users/{user}/contactFolders/{folder}/contacts/delta")
    def contacts_delta(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        n = contact_folder(user, req.params["folder"])
        return _outlook_delta(
            w,
            req,
            contact_view(user, n),
            f"/users/{user.id}/contactFolders('{contact_folder_id(user, n)}')/contacts/delta",
            contact_json,
            "contact",
            {},
            lambda s, o: True,
        )

    def create_contact(req: Req, user: User, n: int) -> Resp:
        data = req.json_object()
        now = w.now()
        cid = ids.make(w.seed, "AAMk", K_NEW_CONTACT, user.index, w.store.counter("contact"))
        state = {
            **{k: data.get(k) for k in ("givenName", "surname", "displayName", "companyName", "jobTitle")},
            "emailAddresses": data.get("emailAddresses") or [],
            "businessPhones": data.get("businessPhones") or [],
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "changeKey": generate.change_key(cid, now),
            "_user": user.index,
            "parentFolderId": contact_folder_id(user, n),
        }
        w.store.write(now, [(f"c:{user.index}:{n}", cid, state, None)])
        return Resp(201, contact_json(cid, state))

    @router.route("POST", "users/{user}/contacts")
    def post_contact(req: Req) -> Resp:
        return create_contact(req, w.mailbox_user(req.params["user"]), 0)

    @router.route("POST", "users/{user}/contactFolders/{folder}/contacts")
    def post_folder_contact(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        return create_contact(req, user, contact_folder(user, req.params["folder"]))

    @router.route("GET", "users/{user}/contacts/{contact}")
    def get_contact(req: Req) -> Resp:
        user = w.mailbox_user(req.params["user"])
        cid = req.params["contact"]
        found = w.store.item(cid)
        if found is not None:
            if found[1] is None or found[1].get("_user") != user.index:
                raise not_found_mail()
            return Resp(200, contact_json(cid, found[1]))
        parsed = ids.parse(w.seed, "AAMk", cid)
        if (
            parsed
            and parsed[0] == K_CONTACT
            and parsed[1][0] == user.index
            and parsed[1][1] < len(CONTACT_FOLDERS)
        ):
            view = contact_view(user, parsed[1][1])
            if parsed[1][2] < view.base_count:
                return Resp(200, contact_json(cid, view.base_state(parsed[1][2])))
        raise not_found_mail()
