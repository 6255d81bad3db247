"""SharePoint sites, lists and list items with their delta (graph-protocol.md §2.3, §2.5, §3.6, §5.5)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from m365vault.emulator import generate
from m365vault.emulator.clock import iso
from m365vault.emulator.delta import Expired, View
from m365vault.emulator.errors import GraphError, not_found_drive
from m365vault.emulator.files import Files
from m365vault.emulator.http import Req, Resp, Router
from m365vault.emulator.tenant import ListDef, Site
from m365vault.emulator.tokens import InvalidToken
from m365vault.emulator.world import World

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def site_json(world: World, site: Site) -> dict[str, Any]:
    host, _coll_id, _web_id = site.id.split(",")
    out: dict[str, Any] = {
        "id": site.id,
        "name": site.name,
        "displayName": site.display_name,
        "webUrl": site.web_url,
        "createdDateTime": "2024-02-01T09:00:00Z",
        "lastModifiedDateTime": world.now_iso(),
        "isPersonalSite": site.is_personal,
        "description": "",
        "siteCollection": {"hostname": host, "dataLocationCode": "EUR"},
    }
    if site.is_root:
        out["root"] = {}
        out["siteCollection"]["root"] = {}
    return out


class Lists:
    def __init__(self, world: World) -> None:
        self.w = world

    def get(self, site: Site, key: str) -> ListDef:
        for lst in self.w.tenant.site_lists(site):
            if key.lower() in (lst.id.lower(), lst.name.lower(), lst.display_name.lower()):
                return lst
        raise GraphError(404, "itemNotFound", "List does not exist.")

    def coll(self, site: Site, lst: ListDef) -> str:
        return f"l:{site.index}:{lst.id}"

    def base_count(self, site: Site, lst: ListDef) -> int:
        if lst.template != "genericList":
            return 0
        return max(3, self.w.tenant.spec.list_items - site.index % 3)

    def store_id(self, site: Site, lst: ListDef, number: int) -> str:
        return f"li:{site.index}:{lst.id}:{number}"

    def view(self, site: Site, lst: ListDef) -> View:
        return View(
            self.coll(site, lst),
            self.base_count(site, lst),
            lambda i: self.store_id(site, lst, i + 1),
            lambda i: {**generate.list_item(self.w.tenant, site.index, i + 1), "_n": i + 1},
        )

    def item(self, site: Site, lst: ListDef, key: str) -> tuple[str, dict[str, Any]]:
        if not key.isdigit():
            raise not_found_drive("The item does not exist.")
        sid = self.store_id(site, lst, int(key))
        found = self.w.store.item(sid)
        if found is not None:
            if found[1] is None:
                raise not_found_drive("The item does not exist.")
            return sid, found[1]
        n = int(key)
        if 1 <= n <= self.base_count(site, lst):
            return sid, {**generate.list_item(self.w.tenant, site.index, n), "_n": n}
        raise not_found_drive("The item does not exist.")

    def items(self, site: Site, lst: ListDef) -> list[tuple[str, dict[str, Any]]]:
        view = self.view(site, lst)
        touched = self.w.store.touched_in(view.key)
        base = [(view.base_id(i), view.base_state(i)) for i in range(view.base_count)]
        return [(i, s) for i, s in base if i not in touched] + list(self.w.store.live_in(view.key))

    def item_json(
        self, req: Req, site: Site, lst: ListDef, state: dict[str, Any], expand: bool
    ) -> dict[str, Any]:
        n = state["_n"]
        guid = hashlib.md5(f"{lst.id}:{n}".encode()).hexdigest()
        out: dict[str, Any] = {
            "@odata.etag": f'"{guid},{state["version"]}"',
            "id": str(n),
            "createdDateTime": iso(state["createdDateTime"]),
            "lastModifiedDateTime": iso(state["lastModifiedDateTime"]),
            "eTag": f'"{guid},{state["version"]}"',
            "webUrl": f"{site.web_url}/Lists/{lst.name}/{n}_.000",
            "createdBy": {"user": {"displayName": "System Account"}},
            "lastModifiedBy": {"user": {"displayName": "System Account"}},
            "parentReference": {"id": lst.id, "siteId": site.id},
            "contentType": {"id": "0x0100" + guid[:16].upper(), "name": "Item"},
        }
        if expand:
            out["fields"] = {
                "@odata.etag": out["eTag"],
                "id": str(n),
                **state["fields"],
                "Modified": out["lastModifiedDateTime"],
                "Created": out["createdDateTime"],
            }
        return out

    def next_number(self, site: Site, lst: ListDef) -> int:
        return self.w.store.counter(f"list:{site.index}:{lst.id}", start=self.base_count(site, lst))

    def write(self, site: Site, lst: ListDef, sid: str, state: dict[str, Any] | None) -> None:
        self.w.store.write(self.w.now(), [(self.coll(site, lst), sid, state, None)])


def _fields(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not all(isinstance(k, str) and _FIELD_NAME.match(k) for k in data):
        raise GraphError(400, "invalidRequest", "fields must be an object of column names to values.")
    return {k: v for k, v in data.items() if not k.startswith("@")}


def register(router: Router, world: World, files: Files, lists: Lists) -> None:  # noqa: C901, PLR0915
    w = world

    def sites_page(req: Req, sites: list[Site], path: str) -> Resp:
        size, _ = w.page_size(req, 200, 1000, prefer=False)
        offset = 0
        if "$skiptoken" in req.query:
            try:
                offset = int(w.signer.read("skip", req.query["$skiptoken"])["o"])
            except (InvalidToken, KeyError) as exc:
                raise GraphError(400, "invalidRequest", "The skip token is invalid.") from exc
        flt = req.query.get("$filter", "")
        if flt.replace(" ", "").lower() == "sitecollection/rootnenull":
            sites = [s for s in sites if s.is_root]
        search = req.query.get("search")
        if search and search != "*":
            sites = [s for s in sites if search.lower() in s.display_name.lower()]
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#sites",
            "value": [w.pick(site_json(w, s), req.select()) for s in sites[offset : offset + size]],
        }
        if offset + size < len(sites):
            body["@odata.nextLink"] = w.link(
                req, path, **{**req.query, "$skiptoken": w.signer.mint("skip", {"o": offset + size})}
            )
        return Resp(200, body)

    @router.route("GET", "sites/getAllSites")
    def all_sites(req: Req) -> Resp:
        return sites_page(req, w.tenant.sites, "/sites/oneDrive.getAllSites")

    @router.route("GET", "sites/oneDrive.getAllSites")
    def all_sites_next(req: Req) -> Resp:
        return sites_page(req, w.tenant.sites, "/sites/oneDrive.getAllSites")

    @router.route("GET", "sites")
    def list_sites(req: Req) -> Resp:
        return sites_page(req, [s for s in w.tenant.sites if not s.is_personal], "/sites")

    @router.route("GET", "sites/{site}")
    def get_site(req: Req) -> Resp:
        return Resp(200, w.pick(site_json(w, w.site(req.params["site"])), req.select()))

    @router.route("GET", "sites/{site}/sites")
    def subsites(req: Req) -> Resp:
        w.site(req.params["site"])
        return Resp(200, {"value": []})

    @router.route("GET", "groups/{group}/sites/root")
    def group_site(req: Req) -> Resp:
        g = w.tenant.group_by_id.get(req.params["group"].lower())
        if g is None:
            raise GraphError(404, "Request_ResourceNotFound", "Group not found.")
        return Resp(200, w.pick(site_json(w, w.tenant.sites[g.site_index]), req.select()))

    @router.route("GET", "sites/{site}/drives")
    def site_drives(req: Req) -> Resp:
        site = w.site(req.params["site"])
        return Resp(
            200,
            {"value": [w.pick(files.drive_json(req, d), req.select()) for d in w.tenant.site_drives(site)]},
        )

    def list_json(req: Req, site: Site, lst: ListDef) -> dict[str, Any]:
        return {
            "id": lst.id,
            "name": lst.name,
            "displayName": lst.display_name,
            "createdDateTime": "2024-02-01T09:00:00Z",
            "lastModifiedDateTime": w.now_iso(),
            "webUrl": f"{site.web_url}/{'Lists/' if lst.template == 'genericList' else ''}{lst.name}",
            "list": {"template": lst.template, "hidden": False, "contentTypesEnabled": False},
            "parentReference": {"siteId": site.id},
        }

    @router.route("GET", "sites/{site}/lists")
    def site_lists(req: Req) -> Resp:
        site = w.site(req.params["site"])
        return Resp(
            200,
            {
                "@odata.context": f"{req.graph_base}/$metadata#sites('{site.id}')/lists",
                "value": [
                    w.pick(list_json(req, site, lst), req.select()) for lst in w.tenant.site_lists(site)
                ],
            },
        )

    @router.route("GET", "sites/{site}/lists/{list}")
    def get_list(req: Req) -> Resp:
        site = w.site(req.params["site"])
        return Resp(200, w.pick(list_json(req, site, lists.get(site, req.params["list"])), req.select()))

    def expand_fields(req: Req) -> bool:
        return "fields" in req.query.get("$expand", "").lower()

    @router.route("GET", "sites/{site}/lists/{list}/items")
    def list_items(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        rows = lists.items(site, lst)
        size, _ = w.page_size(req, 200, 1000, prefer=False)
        offset = 0
        if "$skiptoken" in req.query:
            try:
                offset = int(w.signer.read("skip", req.query["$skiptoken"])["o"])
            except (InvalidToken, KeyError) as exc:
                raise GraphError(400, "invalidRequest", "The skip token is invalid.") from exc
        body: dict[str, Any] = {
            "@odata.context": f"{req.graph_base}/$metadata#sites('{site.id}')/lists('{lst.id}')/items",
            "value": [
                lists.item_json(req, site, lst, s, expand_fields(req))
                for _, s in rows[offset : offset + size]
            ],
        }
        if offset + size < len(rows):
            body["@odata.nextLink"] = w.link(
                req,
                f"/sites/{site.id}/lists/{lst.id}/items",
                **{**req.query, "$skiptoken": w.signer.mint("skip", {"o": offset + size})},
            )
        return Resp(200, body)

    @router.route("GET", "sites/{site}/lists/{list}/items/delta")
    def items_delta(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        view = lists.view(site, lst)
        link_path = f"/sites/{site.id}/lists/{lst.id}/items/delta"
        token = req.query.get("token")
        options = {"expand": expand_fields(req), "top": req.query.get("$top")}
        if token == "latest":
            page = w.delta.latest(view, options)
        else:
            payload = None
            if token:
                try:
                    payload = w.delta.read_token(view, token)
                except Expired as exc:
                    raise GraphError(
                        410,
                        "resyncRequired",
                        "Resync required. Replace any local items with the "
                        "server's version (including deletes).",
                        headers={"Location": w.link(req, link_path)},
                        inner_code="resyncChangesApplyDifferences",
                    ) from exc
                options = payload.get("q") or options
            size, _ = w.delta_size(req, options, 200, prefer=False)
            page = w.delta.page(view, payload, size, options)
        value = []
        for sid, state in page.items:
            if state is None:
                value.append(
                    {
                        "id": sid.rsplit(":", 1)[1],
                        "deleted": {"state": "deleted"},
                        "parentReference": {"id": lst.id, "siteId": site.id},
                        "contentType": {"id": "0x0100", "name": "Item"},
                    }
                )
            else:
                value.append(lists.item_json(req, site, lst, state, bool(options.get("expand"))))
        body: dict[str, Any] = {"@odata.context": f"{req.graph_base}/$metadata#Collection(listItem)"}
        if page.next_token:
            body["@odata.nextLink"] = w.link(req, link_path, token=page.next_token)
        else:
            body["@odata.deltaLink"] = w.link(req, link_path, token=page.delta_token or "")
        body["value"] = value
        return Resp(200, body)

    @router.route("GET", "sites/{site}/lists/{list}/items/{item}")
    def get_list_item(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        _, state = lists.item(site, lst, req.params["item"])
        return Resp(200, lists.item_json(req, site, lst, state, expand_fields(req)))

    @router.route("GET", "sites/{site}/lists/{list}/columns")
    def columns(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        cols: list[tuple[str, str, dict[str, Any]]] = [("Title", "text", {"text": {"maxLength": 255}})]
        if lst.template == "genericList":
            cols += [
                ("Status", "choice", {"choice": {"choices": ["Not started", "In progress", "Completed"]}}),
                ("Priority", "choice", {"choice": {"choices": ["(1) High", "(2) Normal", "(3) Low"]}}),
                ("PercentComplete", "number", {"number": {"minimum": 0, "maximum": 1}}),
            ]
        value = [
            {"id": hashlib.md5(f"{lst.id}:{n}".encode()).hexdigest(), "name": n, "displayName": n,
             "columnGroup": "Custom Columns", "readOnly": False, "required": n == "Title", **facet}
            for n, _, facet in cols
        ]  # fmt: skip
        return Resp(200, {"value": value})

    @router.route("GET", "sites/{site}/lists/{list}/items/{item}/versions")
    def item_versions(req: Req) -> Resp:
        """Every state the item had: the generated one (if any) and each journal row, newest first."""
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        sid, _ = lists.item(site, lst, req.params["item"])
        states: list[tuple[float, dict[str, Any]]] = []
        n = int(req.params["item"])
        if n <= lists.base_count(site, lst):
            base = {**generate.list_item(w.tenant, site.index, n), "_n": n}
            states.append((base["lastModifiedDateTime"], base))
        states += [(ts, s) for _, ts, s in w.store.history(lists.coll(site, lst), sid) if s is not None]
        value = [
            {"id": f"{k + 1}.0", "lastModifiedDateTime": iso(ts),
             "lastModifiedBy": {"user": {"displayName": "System Account"}},
             "fields": lists.item_json(req, site, lst, s, True)["fields"]}
            for k, (ts, s) in enumerate(states)
        ]  # fmt: skip
        return Resp(200, {"value": list(reversed(value))})

    @router.route("GET", "sites/{site}/lists/{list}/items/{item}/fields")
    def get_fields(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        _, state = lists.item(site, lst, req.params["item"])
        return Resp(200, lists.item_json(req, site, lst, state, True)["fields"])

    @router.route("POST", "sites/{site}/lists/{list}/items")
    def create_list_item(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        if lst.template != "genericList":
            raise GraphError(400, "invalidRequest", "Create files in a document library through its drive.")
        fields = _fields(req.json_object().get("fields"))
        n = lists.next_number(site, lst)
        now = w.now()
        state = {"fields": fields, "createdDateTime": now, "lastModifiedDateTime": now, "version": 1, "_n": n}
        lists.write(site, lst, lists.store_id(site, lst, n), state)
        return Resp(201, lists.item_json(req, site, lst, state, True))

    @router.route("PATCH", "sites/{site}/lists/{list}/items/{item}/fields")
    def patch_fields(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        sid, state = lists.item(site, lst, req.params["item"])
        fields = _fields(req.json_object())
        state = {
            **state,
            "fields": {**state["fields"], **fields},
            "lastModifiedDateTime": w.now(),
            "version": int(state["version"]) + 1,
        }
        lists.write(site, lst, sid, state)
        return Resp(200, lists.item_json(req, site, lst, state, True)["fields"])

    @router.route("PATCH", "sites/{site}/lists/{list}/items/{item}")
    def patch_item(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        sid, state = lists.item(site, lst, req.params["item"])
        fields = _fields(req.json_object().get("fields", {}))
        state = {
            **state,
            "fields": {**state["fields"], **fields},
            "lastModifiedDateTime": w.now(),
            "version": int(state["version"]) + 1,
        }
        lists.write(site, lst, sid, state)
        return Resp(200, lists.item_json(req, site, lst, state, True))

    @router.route("DELETE", "sites/{site}/lists/{list}/items/{item}")
    def delete_list_item(req: Req) -> Resp:
        site = w.site(req.params["site"])
        lst = lists.get(site, req.params["list"])
        sid, _ = lists.item(site, lst, req.params["item"])
        lists.write(site, lst, sid, None)
        return Resp(204)
