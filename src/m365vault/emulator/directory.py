"""Directory: users, groups, mailbox settings (graph-protocol.md §2.1, §2.2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from m365vault.emulator.delta import Expired, View
from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.tenant import Group, User
from m365vault.emulator.tokens import InvalidToken
from m365vault.emulator.world import World

DEFAULT_USER_PROPS = (
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)
_CLAUSE = re.compile(
    r"^\s*(?:(?P<func>endswith|startswith)\((?P<fprop>[\w/]+)\s*,\s*'(?P<fval>[^']*)'\)"
    r"|(?P<any>[\w]+)/any\(\w+:\s*\w+\s+eq\s+'(?P<aval>[^']*)'\)"
    r"|(?P<prop>[\w/$]+)\s+(?P<op>eq|ne)\s+(?P<val>'[^']*'|true|false|null|\d+))\s*$",
    re.IGNORECASE,
)


def user_json(world: World, u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": u.given_name,
        "jobTitle": u.job_title,
        "mail": u.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "accountEnabled": u.account_enabled,
        "userType": u.user_type,
        "department": u.department,
        "onPremisesSyncEnabled": None,
        "createdDateTime": "2024-03-01T09:00:00Z",
        "assignedLicenses": (
            [{"skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965", "disabledPlans": []}] if u.has_drive else []
        ),
        "mailboxSettings": None,
    }


def group_json(world: World, g: Group) -> dict[str, Any]:
    return {
        "id": g.id,
        "displayName": g.display_name,
        "mail": f"{g.mail_nickname}@{world.tenant.domain}",
        "mailNickname": g.mail_nickname,
        "groupTypes": ["Unified"],
        "mailEnabled": True,
        "securityEnabled": False,
        "visibility": "Private",
        "description": f"{g.display_name} team",
        "createdDateTime": "2024-02-01T09:00:00Z",
    }


def _parse_filter(text: str) -> tuple[Callable[[dict[str, Any]], bool], bool]:
    """(predicate, whether it is an advanced query) for the small $filter subset the emulator knows."""
    advanced = False
    ors = re.split(r"\s+or\s+", text, flags=re.IGNORECASE)
    groups: list[list[Callable[[dict[str, Any]], bool]]] = []
    for part in ors:
        preds = []
        for clause in re.split(r"\s+and\s+", part, flags=re.IGNORECASE):
            clause = clause.strip()
            if clause.startswith("(") and clause.endswith(")"):
                clause = clause[1:-1]
            m = _CLAUSE.match(clause)
            if not m:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"Unsupported or invalid query filter clause specified for property '{clause.strip()}'.",
                )
            preds.append(_clause(m))
            advanced |= (
                bool(m.group("func") and m.group("func").lower() == "endswith")
                or ((m.group("op") or "").lower() == "ne")
                or "$count" in (m.group("prop") or "")
            )
        groups.append(preds)
    return (lambda obj: any(all(p(obj) for p in g) for g in groups)), advanced


def _clause(m: re.Match[str]) -> Callable[[dict[str, Any]], bool]:
    if m.group("func"):
        prop, val, func = m.group("fprop"), m.group("fval").lower(), m.group("func").lower()
        return lambda o: (
            isinstance(o.get(prop), str)
            and (o[prop].lower().endswith(val) if func == "endswith" else o[prop].lower().startswith(val))
        )
    if m.group("any"):
        prop, val = m.group("any"), m.group("aval")
        return lambda o: val in (o.get(prop) or [])
    prop, op, raw = m.group("prop"), m.group("op").lower(), m.group("val")
    value: Any = {"true": True, "false": False, "null": None}.get(raw.lower(), raw.strip("'"))
    if raw.isdigit():
        value = int(raw)

    def get(o: dict[str, Any]) -> Any:
        if prop.endswith("/$count"):
            return len(o.get(prop.split("/")[0]) or [])
        return o.get(prop)

    if op == "eq":
        return lambda o: get(o) == value
    return lambda o: get(o) != value


def _collection(
    world: World,
    req: Req,
    path: str,
    objects: list[dict[str, Any]],
    context: str,
    default_select: tuple[str, ...] | None,
) -> Resp:
    flt = req.query.get("$filter")
    counted = req.query.get("$count", "").lower() == "true"
    eventual = req.headers.get("consistencylevel", "").lower() == "eventual"
    if flt:
        pred, advanced = _parse_filter(flt)
        if advanced and not (counted and eventual):
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported query: this filter requires ConsistencyLevel: eventual and $count=true.",
            )
        objects = [o for o in objects if pred(o)]
    if counted and not eventual:
        raise GraphError(
            400, "Request_BadRequest", "$count is only supported with ConsistencyLevel: eventual."
        )
    size, _ = world.page_size(req, 100, 999, prefer=False)
    offset = 0
    if "$skiptoken" in req.query:
        try:
            offset = int(world.signer.read("skip", req.query["$skiptoken"])["o"])
        except (InvalidToken, KeyError) as exc:
            raise GraphError(400, "Request_BadRequest", "The skip token is invalid.") from exc
    select = req.select() or (list(default_select) if default_select else None)
    body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#{context}"}
    if counted and offset == 0:
        body["@odata.count"] = len(objects)
    end = offset + size
    if end < len(objects):
        query = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        body["@odata.nextLink"] = world.link(
            req, path, **query, **{"$skiptoken": world.signer.mint("skip", {"o": end})}
        )
    body["value"] = [world.pick(o, select) for o in objects[offset:end]]
    return Resp(200, body)


def register(router: Router, world: World) -> None:
    @router.route("GET", "users")
    def list_users(req: Req) -> Resp:
        users = [user_json(world, u) for u in world.tenant.users]
        return _collection(world, req, "/users", users, "users", DEFAULT_USER_PROPS)

    def directory_delta(
        req: Req, kind: str, objects: list[dict[str, Any]], default: tuple[str, ...] | None
    ) -> Resp:
        """users/delta and groups/delta: the directory is generated and never written, so later rounds
        are empty; `$deltatoken=latest` skips the first round (§2.1, §3.1)."""
        view = View(kind, len(objects), lambda i: str(objects[i]["id"]), lambda i: objects[i])
        token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        options = {"select": req.query.get("$select"), "top": req.query.get("$top")}
        if token == "latest":
            page = world.delta.latest(view, options)
        else:
            payload = None
            if token:
                try:
                    payload = world.delta.read_token(view, token)
                except Expired as exc:
                    raise GraphError(
                        410, "Request_ResourceNotFound", "The delta token has expired; start over.",
                        headers={"Location": world.link(req, f"/{kind}/delta")},
                    ) from exc  # fmt: skip
                options = payload.get("q") or options
            size, _ = world.delta_size(req, options, 100, prefer=False)
            page = world.delta.page(view, payload, size, options)
        select = [s for s in (options.get("select") or "").split(",") if s] or (
            list(default) if default else None
        )
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#{kind}"}
        if page.next_token:
            body["@odata.nextLink"] = world.link(req, f"/{kind}/delta", **{"$skiptoken": page.next_token})
        else:
            body["@odata.deltaLink"] = world.link(
                req, f"/{kind}/delta", **{"$deltatoken": page.delta_token or ""}
            )
        body["value"] = [world.pick(s, select) for _, s in page.items if s is not None]
        return Resp(200, body)

    @router.route("GET", "users/delta")
    def users_delta(req: Req) -> Resp:
        return directory_delta(
            req, "users", [user_json(world, u) for u in world.tenant.users], DEFAULT_USER_PROPS
        )

    @router.route("GET", "groups/delta")
    def groups_delta(req: Req) -> Resp:
        return directory_delta(req, "groups", [group_json(world, g) for g in world.tenant.groups], None)

    @router.route("GET", "users/{user}")
    def get_user(req: Req) -> Resp:
        u = world.user(req.params["user"])
        obj = user_json(world, u)
        select = req.select() or list(DEFAULT_USER_PROPS)
        return Resp(
            200, {"@odata.context": f"{req.graph_base}/$metadata#users/$entity", **world.pick(obj, select)}
        )

    @router.route("GET", "users/{user}/mailboxSettings")
    def mailbox_settings(req: Req) -> Resp:
        u = world.mailbox_user(req.params["user"])
        return Resp(
            200,
            {
                "@odata.context": f"{req.graph_base}/$metadata#users('{u.id}')/mailboxSettings",
                "archiveFolder": "",
                "timeZone": "UTC",
                "language": {"locale": "en-US", "displayName": "English"},
                "dateFormat": "M/d/yyyy",
                "timeFormat": "h:mm tt",
                "userPurpose": u.purpose,
                "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
                "automaticRepliesSetting": {"status": "disabled", "externalAudience": "none"},
            },
        )

    @router.route("GET", "groups")
    def list_groups(req: Req) -> Resp:
        groups = [group_json(world, g) for g in world.tenant.groups]
        return _collection(world, req, "/groups", groups, "groups", None)

    @router.route("GET", "groups/{group}")
    def get_group(req: Req) -> Resp:
        g = _group(world, req.params["group"])
        return Resp(
            200,
            {
                "@odata.context": f"{req.graph_base}/$metadata#groups/$entity",
                **world.pick(group_json(world, g), req.select()),
            },
        )

    @router.route("GET", "organization")
    def organization(req: Req) -> Resp:
        t = world.tenant
        return Resp(
            200,
            {
                "value": [
                    {
                        "id": t.tenant_id,
                        "displayName": t.short.title(),
                        "verifiedDomains": [
                            {"name": t.domain, "isDefault": True, "isInitial": True, "type": "Managed"}
                        ],
                    }
                ]
            },
        )


def _group(world: World, key: str) -> Group:
    g = world.tenant.group_by_id.get(key.lower())
    if g is None:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its "
            "queried reference-property objects are not present.",
        )
    return g
