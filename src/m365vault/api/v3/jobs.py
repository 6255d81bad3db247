"""/v3/Jobs, /v3/Organizations/{id}/Jobs, job items and the job action endpoint (the seed)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.auth import CurrentPrincipal
from m365vault.api.deps import ControlDep, LinksDep, Offset, OptionalLimit
from m365vault.api.v3.actions import JOB_ACTIONS, action_schema, parse_action
from m365vault.api.v3.models import ERROR_RESPONSES, JobIn, JobItemIn, JobItemPutIn
from m365vault.api.v3.present import job, job_item, restore_session
from m365vault.api.wire import BadInput, empty_response, json_response, window
from m365vault.control.jobs import EXCLUDED, SELECTED

router = APIRouter(tags=["Jobs"], responses=ERROR_RESPONSES)


@router.get("/v3/Organizations/{organizationId}/Jobs", summary="Jobs of an organization (bare array)")
def organization_jobs(
    organizationId: uuid.UUID,
    control: ControlDep,
    links: LinksDep,
    offset: Offset = 0,
    limit: OptionalLimit = None,
) -> Response:
    return json_response([job(j, links) for j in window(control.jobs.all(organizationId), offset, limit)])


@router.post("/v3/Organizations/{organizationId}/Jobs", status_code=201, summary="Create a backup job")
async def create_job(
    organizationId: uuid.UUID, control: ControlDep, links: LinksDep, body: JobIn = Body(...)
) -> Response:
    return json_response(job(await control.jobs.create(organizationId, body.to_input()), links), 201)


@router.get("/v3/Jobs", summary="All backup jobs (bare array)")
def list_jobs(
    control: ControlDep, links: LinksDep, offset: Offset = 0, limit: OptionalLimit = None
) -> Response:
    return json_response([job(j, links) for j in window(control.jobs.all(), offset, limit)])


@router.get("/v3/Jobs/{jobId}", summary="Get a backup job")
def get_job(jobId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
    return json_response(job(control.jobs.get(jobId), links))


@router.put("/v3/Jobs/{jobId}", summary="Edit a backup job (partial; 200, no body)")
async def edit_job(jobId: uuid.UUID, control: ControlDep, body: JobIn = Body(...)) -> Response:
    await control.jobs.edit(jobId, body.to_input())
    return empty_response()


@router.delete("/v3/Jobs/{jobId}", summary="Remove a backup job (not while it runs)")
def delete_job(jobId: uuid.UUID, control: ControlDep) -> Response:
    control.jobs.delete(jobId)
    return empty_response()


@router.post(
    "/v3/Jobs/{jobId}/Action",
    summary="Enable, disable, start or stop a job, or explore its backups",
    description="Exactly one of `enable`, `disable`, `start`, `stop` (value null) or `explore` "
    "(`{datetime, type, showDeleted, showAllVersions}`). enable/disable/start/stop answer 200 with an "
    "empty body; explore answers 201 with the new restore session.",
    openapi_extra=action_schema(JOB_ACTIONS),
)
async def job_action(
    jobId: uuid.UUID,
    request: Request,
    control: ControlDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    action = parse_action(await request.body(), JOB_ACTIONS)
    if action.name == "enable":
        await run_in_threadpool(control.jobs.enable, jobId)
    elif action.name == "disable":
        await run_in_threadpool(control.jobs.disable, jobId)
    elif action.name == "start":
        await control.jobs.start(jobId)
    elif action.name == "stop":
        await control.jobs.stop(jobId)
    else:
        assert action.explore is not None
        session = await run_in_threadpool(
            control.restore_sessions.explore_job, principal, jobId, action.explore
        )
        return json_response(restore_session(session, links), 201)
    return empty_response()


def _item_routes(collection: str, kind: str) -> None:
    base = f"/v3/Jobs/{{jobId}}/{collection}"

    @router.get(base, summary=f"{collection} of a job (bare array)", name=f"list_{kind}_items")
    def list_items(
        jobId: uuid.UUID,
        control: ControlDep,
        links: LinksDep,
        offset: Offset = 0,
        limit: OptionalLimit = None,
    ) -> Response:
        return json_response(
            [job_item(i, links) for i in window(control.jobs.items(jobId, kind), offset, limit)]
        )

    @router.post(base, summary=f"Add {collection} to a job", name=f"add_{kind}_items")
    def add_items(
        jobId: uuid.UUID,
        control: ControlDep,
        links: LinksDep,
        body: list[JobItemIn] = Body(...),
    ) -> Response:
        rows = control.jobs.add_items(jobId, kind, [i.to_input() for i in body])
        return json_response([job_item(i, links) for i in rows])

    @router.get(base + "/{itemId}", summary=f"One of a job's {collection}", name=f"get_{kind}_item")
    def get_item(jobId: uuid.UUID, itemId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
        return json_response(job_item(control.jobs.item(jobId, kind, itemId), links))

    @router.put(
        base + "/{itemId}",
        summary=f"Replace one of a job's {collection}, or append items (v3 `Id` + `ItemsToAppend`)",
        name=f"put_{kind}_item",
    )
    def put_item(
        jobId: uuid.UUID,
        itemId: uuid.UUID,
        control: ControlDep,
        body: JobItemPutIn = Body(...),
    ) -> Response:
        if body.items_to_append is not None:
            control.jobs.item(jobId, kind, itemId)  # the item named in the path must exist
            control.jobs.add_items(jobId, kind, [i.to_input() for i in body.items_to_append])
        else:
            if body.type is None:
                raise BadInput("Give a job item with 'type', or 'ItemsToAppend'.")
            control.jobs.replace_item(
                jobId, kind, itemId, JobItemIn.model_validate(body.model_dump()).to_input()
            )
        return empty_response()

    @router.delete(
        base + "/{itemId}", summary=f"Remove one of a job's {collection}", name=f"delete_{kind}_item"
    )
    def delete_item(jobId: uuid.UUID, itemId: uuid.UUID, control: ControlDep) -> Response:
        control.jobs.remove_item(jobId, kind, itemId)
        return empty_response()


_item_routes("SelectedItems", SELECTED)
_item_routes("ExcludedItems", EXCLUDED)
