"""/v3/Organizations and its sub-resources (jobs live in jobs.py)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.auth import CurrentPrincipal
from m365vault.api.deps import DEFAULT_PAGE_LIMIT, ControlDep, LinksDep, Offset, OptionalLimit, PageLimit
from m365vault.api.v3.actions import action_schema, parse_action
from m365vault.api.v3.models import ERROR_RESPONSES, OrganizationIn
from m365vault.api.v3.present import organization, restore_session
from m365vault.api.wire import MAX_PAGE_LIMIT, Links, empty_response, json_response, page_object, window
from m365vault.control.ports import TenantObject

router = APIRouter(tags=["Organizations"], responses=ERROR_RESPONSES)


@router.get("/v3/Organizations", summary="List organizations (bare array)")
def list_organizations(
    control: ControlDep, links: LinksDep, offset: Offset = 0, limit: OptionalLimit = None
) -> Response:
    orgs = window(control.organizations.all(), offset, limit)
    return json_response([organization(o, links) for o in orgs])


@router.post("/v3/Organizations", status_code=201, summary="Add an Office 365 organization")
async def add_organization(
    control: ControlDep, links: LinksDep, body: OrganizationIn = Body(...)
) -> Response:
    org = await control.organizations.add(body.to_input())
    return json_response(organization(org, links), 201)


@router.get("/v3/Organizations/{organizationId}", summary="Get an organization")
def get_organization(organizationId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
    return json_response(organization(control.organizations.get(organizationId), links))


@router.put("/v3/Organizations/{organizationId}", summary="Edit an organization (200, no body)")
async def edit_organization(
    organizationId: uuid.UUID,
    control: ControlDep,
    body: OrganizationIn = Body(...),
) -> Response:
    await control.organizations.edit(organizationId, body.to_input())
    return empty_response()


@router.delete("/v3/Organizations/{organizationId}", summary="Remove an organization (200, no body)")
def delete_organization(organizationId: uuid.UUID, control: ControlDep) -> Response:
    control.organizations.delete(organizationId)
    return empty_response()


@router.post(
    "/v3/Organizations/{organizationId}/Action",
    status_code=201,
    summary="Explore the organization's backups: opens a restore session",
    openapi_extra=action_schema(("explore",)),
)
async def organization_action(
    organizationId: uuid.UUID,
    request: Request,
    control: ControlDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    action = parse_action(await request.body(), ("explore",))
    assert action.explore is not None
    explore = action.explore
    session = await run_in_threadpool(
        control.restore_sessions.explore_organization, principal, organizationId, explore
    )
    return json_response(restore_session(session, links), 201)


@router.get(
    "/v3/Organizations/{organizationId}/UsedRepositories",
    summary="Repositories holding the organization's data",
)
def used_repositories(organizationId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
    repos = control.organizations.used_repositories(organizationId)
    out: list[dict[str, Any]] = []
    for repo in repos:
        out.append(
            {
                "id": str(repo.id),
                "name": repo.name,
                "_links": {"backupRepository": links.link("backuprepositories", repo.id)},
            }
        )
    return json_response(out)


@router.get("/v3/Organizations/{organizationId}/LicensingInformation", summary="Licensed and new users")
def licensing_information(organizationId: uuid.UUID, control: ControlDep) -> Response:
    info = control.organizations.licensing(organizationId)
    return json_response({"licensedUsers": info.licensed_users, "newUsers": info.new_users})


def _tenant_object(obj: TenantObject, links: Links, org_id: uuid.UUID, kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": obj.id, "displayName": obj.display_name, "name": obj.name, **obj.extra}
    doc["_links"] = {
        "self": links.link("organizations", org_id, kind, obj.id),
        "organization": links.link("organizations", org_id),
    }
    if kind == "users":
        doc["_links"]["onedrives"] = links.link("organizations", org_id, "users", obj.id, "onedrives")
    return doc


def _tenant_listing(kind: str, path: str) -> None:
    @router.get(
        path, summary=f"Tenant {kind} (page object; needs the Microsoft 365 connector)", name=f"tenant_{kind}"
    )
    async def listing(
        organizationId: uuid.UUID,
        request: Request,
        control: ControlDep,
        links: LinksDep,
        offset: Offset = 0,
        limit: PageLimit = DEFAULT_PAGE_LIMIT,
    ) -> Response:
        page = await control.organizations.tenant_objects(organizationId, kind, offset, limit)
        results = [_tenant_object(o, links, organizationId, kind) for o in page.items]
        total = page.total if page.total is not None else offset + len(results) + (len(results) == limit)
        return json_response(page_object(request, results, offset, limit, total))


_tenant_listing("users", "/v3/Organizations/{organizationId}/Users")
_tenant_listing("groups", "/v3/Organizations/{organizationId}/Groups")
_tenant_listing("sites", "/v3/Organizations/{organizationId}/Sites")


@router.get(
    "/v3/Organizations/{organizationId}/Users/{userId}/OneDrives",
    summary="A user's OneDrives (bare array; needs the Microsoft 365 connector)",
)
async def user_onedrives(
    organizationId: uuid.UUID,
    userId: str,
    control: ControlDep,
    links: LinksDep,
) -> Response:
    page = await control.organizations.tenant_objects(organizationId, "onedrives", 0, MAX_PAGE_LIMIT, userId)
    out = []
    for o in page.items:
        doc: dict[str, Any] = {"id": o.id, "name": o.name, **o.extra}
        doc["_links"] = {
            "self": links.link("organizations", organizationId, "users", userId, "onedrives", o.id),
            "user": links.link("organizations", organizationId, "users", userId),
        }
        out.append(doc)
    return json_response(out)
