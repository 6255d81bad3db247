"""/v3/JobSessions (+ log) and /v3/RestoreSessions (+ events, stop)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from m365vault.api.auth import CurrentPrincipal
from m365vault.api.deps import DEFAULT_PAGE_LIMIT, ControlDep, LinksDep, Offset, OptionalLimit, PageLimit
from m365vault.api.v3.actions import action_schema, parse_action
from m365vault.api.v3.models import ERROR_RESPONSES
from m365vault.api.v3.present import job_session, log_item, restore_event, restore_session
from m365vault.api.wire import MAX_PAGE_LIMIT, empty_response, json_response, page_object

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/v3/JobSessions", tags=["JobSessions"], summary="All job sessions, newest first (bare array)")
def list_job_sessions(
    control: ControlDep, links: LinksDep, offset: Offset = 0, limit: OptionalLimit = None
) -> Response:
    page = control.job_sessions.all(offset, limit or MAX_PAGE_LIMIT)
    return json_response([job_session(s, links) for s in page.items])


@router.get("/v3/Jobs/{jobId}/JobSessions", tags=["JobSessions"], summary="Sessions of a job (bare array)")
def job_sessions_of_job(
    jobId: uuid.UUID,
    control: ControlDep,
    links: LinksDep,
    offset: Offset = 0,
    limit: OptionalLimit = None,
) -> Response:
    page = control.job_sessions.all(offset, limit or MAX_PAGE_LIMIT, job_id=jobId)
    return json_response([job_session(s, links) for s in page.items])


@router.get("/v3/JobSessions/{sessionId}", tags=["JobSessions"], summary="Get a job session")
def get_job_session(sessionId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
    return json_response(job_session(control.job_sessions.get(sessionId), links))


def _log_page(
    request: Request,
    sessionId: uuid.UUID,
    control: ControlDep,
    links: LinksDep,
    offset: int,
    limit: int,
) -> Response:
    page = control.job_sessions.log_items(sessionId, offset, limit)
    return json_response(
        page_object(request, [log_item(i, links) for i in page.items], offset, limit, page.total)
    )


@router.get(
    "/v3/JobSessions/{sessionId}/LogItems", tags=["JobSessions"], summary="Log of a job session (page object)"
)
def job_session_log_items(
    sessionId: uuid.UUID,
    request: Request,
    control: ControlDep,
    links: LinksDep,
    offset: Offset = 0,
    limit: PageLimit = DEFAULT_PAGE_LIMIT,
) -> Response:
    return _log_page(request, sessionId, control, links, offset, limit)


@router.get("/v3/JobSessions/{sessionId}/Log", tags=["JobSessions"], summary="Same entries as LogItems")
def job_session_log(
    sessionId: uuid.UUID,
    request: Request,
    control: ControlDep,
    links: LinksDep,
    offset: Offset = 0,
    limit: PageLimit = DEFAULT_PAGE_LIMIT,
) -> Response:
    return _log_page(request, sessionId, control, links, offset, limit)


@router.get("/v3/JobSessions/{sessionId}/LogItems/{logItemId}", tags=["JobSessions"], summary="One log entry")
def job_session_log_item(
    sessionId: uuid.UUID, logItemId: uuid.UUID, control: ControlDep, links: LinksDep
) -> Response:
    return json_response(log_item(control.job_sessions.log_item(sessionId, logItemId), links))


@router.get("/v3/RestoreSessions", tags=["RestoreSessions"], summary="Your restore sessions (page object)")
def list_restore_sessions(
    request: Request,
    control: ControlDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    offset: Offset = 0,
    limit: PageLimit = DEFAULT_PAGE_LIMIT,
) -> Response:
    page = control.restore_sessions.all(principal, offset, limit)
    results = [restore_session(s, links) for s in page.items]
    return json_response(page_object(request, results, offset, limit, page.total))


@router.get(
    "/v3/RestoreSessions/{restoreSessionId}", tags=["RestoreSessions"], summary="Get a restore session"
)
def get_restore_session(
    restoreSessionId: uuid.UUID,
    control: ControlDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    return json_response(restore_session(control.restore_sessions.get(principal, restoreSessionId), links))


@router.post(
    "/v3/RestoreSessions/{restoreSessionId}/Action",
    tags=["RestoreSessions"],
    summary="Stop a restore session (200, no body)",
    openapi_extra=action_schema(("stop",)),
)
async def restore_session_action(
    restoreSessionId: uuid.UUID,
    request: Request,
    control: ControlDep,
    principal: CurrentPrincipal,
) -> Response:
    parse_action(await request.body(), ("stop",))
    await run_in_threadpool(control.restore_sessions.stop, principal, restoreSessionId)
    return empty_response()


@router.get(
    "/v3/RestoreSessions/{restoreSessionId}/Events", tags=["RestoreSessions"], summary="Events (page object)"
)
def restore_session_events(
    restoreSessionId: uuid.UUID,
    request: Request,
    control: ControlDep,
    links: LinksDep,
    principal: CurrentPrincipal,
    offset: Offset = 0,
    limit: PageLimit = DEFAULT_PAGE_LIMIT,
) -> Response:
    page = control.restore_sessions.events(principal, restoreSessionId, offset, limit)
    results = [restore_event(e, links) for e in page.items]
    return json_response(page_object(request, results, offset, limit, page.total))


@router.get(
    "/v3/RestoreSessions/{restoreSessionId}/Events/{eventId}", tags=["RestoreSessions"], summary="One event"
)
def restore_session_event(
    restoreSessionId: uuid.UUID,
    eventId: uuid.UUID,
    control: ControlDep,
    links: LinksDep,
    principal: CurrentPrincipal,
) -> Response:
    return json_response(
        restore_event(control.restore_sessions.event(principal, restoreSessionId, eventId), links)
    )
