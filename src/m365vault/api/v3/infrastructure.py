"""/v3/Proxies and /v3/BackupRepositories."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import Response

from m365vault.api.deps import ControlDep, LinksDep, Offset, OptionalLimit
from m365vault.api.v3.models import ERROR_RESPONSES, ProxyIn, RepositoryIn
from m365vault.api.v3.present import proxy, repository
from m365vault.api.wire import Links, empty_response, json_response, window
from m365vault.control.facade import Control
from m365vault.db.config_tables import BackupRepository

router = APIRouter(responses=ERROR_RESPONSES)


def _repository(
    control: Control, repo: BackupRepository, links: Links, local_proxies: set[uuid.UUID]
) -> dict[str, Any]:
    return repository(repo, links, control.repositories.capacity(repo, repo.proxy_id in local_proxies))


def _local(control: Control) -> set[uuid.UUID]:
    default = control.proxies.default()
    return {default.id} if default else set()


@router.get("/v3/Proxies", tags=["Proxies"], summary="List backup proxies (bare array)")
def list_proxies(
    control: ControlDep, links: LinksDep, offset: Offset = 0, limit: OptionalLimit = None
) -> Response:
    return json_response([proxy(p, links) for p in window(control.proxies.all(), offset, limit)])


@router.post("/v3/Proxies", tags=["Proxies"], status_code=201, summary="Add a backup proxy")
def add_proxy(control: ControlDep, links: LinksDep, body: ProxyIn = Body(...)) -> Response:
    return json_response(proxy(control.proxies.add(body.to_input()), links), 201)


@router.get("/v3/Proxies/{proxyId}", tags=["Proxies"], summary="Get a backup proxy")
def get_proxy(proxyId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
    return json_response(proxy(control.proxies.get(proxyId), links))


@router.put("/v3/Proxies/{proxyId}", tags=["Proxies"], summary="Edit a backup proxy (partial)")
def edit_proxy(proxyId: uuid.UUID, control: ControlDep, body: ProxyIn = Body(...)) -> Response:
    control.proxies.edit(proxyId, body.to_input())
    return empty_response()


@router.delete("/v3/Proxies/{proxyId}", tags=["Proxies"], summary="Remove a backup proxy")
def delete_proxy(proxyId: uuid.UUID, control: ControlDep) -> Response:
    control.proxies.delete(proxyId)
    return empty_response()


@router.get(
    "/v3/Proxies/{proxyId}/Repositories", tags=["Proxies"], summary="Repositories on a proxy (bare array)"
)
def proxy_repositories(
    proxyId: uuid.UUID,
    control: ControlDep,
    links: LinksDep,
    offset: Offset = 0,
    limit: OptionalLimit = None,
) -> Response:
    local = _local(control)
    repos = window(control.proxies.repositories(proxyId), offset, limit)
    return json_response([_repository(control, r, links, local) for r in repos])


@router.get("/v3/BackupRepositories", tags=["BackupRepositories"], summary="List repositories (bare array)")
def list_repositories(
    control: ControlDep, links: LinksDep, offset: Offset = 0, limit: OptionalLimit = None
) -> Response:
    local = _local(control)
    repos = window(control.repositories.all(), offset, limit)
    return json_response([_repository(control, r, links, local) for r in repos])


@router.post(
    "/v3/BackupRepositories", tags=["BackupRepositories"], status_code=201, summary="Add a repository"
)
def add_repository(control: ControlDep, links: LinksDep, body: RepositoryIn = Body(...)) -> Response:
    repo = control.repositories.add(body.to_input())
    return json_response(_repository(control, repo, links, _local(control)), 201)


@router.get("/v3/BackupRepositories/{repositoryId}", tags=["BackupRepositories"], summary="Get a repository")
def get_repository(repositoryId: uuid.UUID, control: ControlDep, links: LinksDep) -> Response:
    return json_response(_repository(control, control.repositories.get(repositoryId), links, _local(control)))


@router.put("/v3/BackupRepositories/{repositoryId}", tags=["BackupRepositories"], summary="Edit a repository")
def edit_repository(repositoryId: uuid.UUID, control: ControlDep, body: RepositoryIn = Body(...)) -> Response:
    control.repositories.edit(repositoryId, body.to_input())
    return empty_response()


@router.delete(
    "/v3/BackupRepositories/{repositoryId}", tags=["BackupRepositories"], summary="Remove a repository"
)
def delete_repository(repositoryId: uuid.UUID, control: ControlDep) -> Response:
    control.repositories.delete(repositoryId)
    return empty_response()
