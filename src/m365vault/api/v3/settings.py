"""/v3/ExclusionSettings and the e-mail settings resources (GET, partial PUT)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import Response

from m365vault.api.deps import ControlDep, LinksDep
from m365vault.api.v3.models import (
    ERROR_RESPONSES,
    ExclusionSettingsIn,
    ExplorerEmailSettingsIn,
    V3Input,
    VboEmailSettingsIn,
)
from m365vault.api.wire import Links, empty_response, json_response
from m365vault.control.settings import EXCLUSIONS

router = APIRouter(tags=["Settings"], responses=ERROR_RESPONSES)


def _document(values: dict[str, Any], links: Links, path: str) -> dict[str, Any]:
    return {
        **values,
        "_links": {"self": links.link(path)},
        "_actions": {"update": {"uri": links.href(path), "method": "PUT"}},
    }


def _changes(body: V3Input, secret_field: str | None = None) -> tuple[dict[str, Any], str | None]:
    dumped = body.model_dump(by_alias=True, exclude_none=True, exclude_unset=True)
    secret = dumped.pop(secret_field, None) if secret_field else None
    return dumped, secret


@router.get("/v3/ExclusionSettings", summary="Mailbox folders excluded from every backup")
def get_exclusions(control: ControlDep, links: LinksDep) -> Response:
    return json_response(_document(control.settings.get(EXCLUSIONS), links, "exclusionsettings"))


@router.put("/v3/ExclusionSettings", summary="Change exclusions (partial)")
def put_exclusions(control: ControlDep, body: ExclusionSettingsIn = Body(...)) -> Response:
    changes, _ = _changes(body)
    control.settings.update(EXCLUSIONS, changes)
    return empty_response()


def _email_routes(resource: str, kind: str, model: type[V3Input]) -> None:
    path = f"/v3/{resource}"
    name = f"email:{kind}"

    @router.get(path, summary=f"{resource} (userPassword is never returned)", name=f"get_{kind}_email")
    def get_email(control: ControlDep, links: LinksDep) -> Response:
        return json_response(_document(control.settings.get(name), links, resource.lower()))

    @router.put(
        path,
        summary=f"Change {resource} (partial)",
        name=f"put_{kind}_email",
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}}
            }
        },
    )
    def put_email(control: ControlDep, body: dict[str, Any] = Body(...)) -> Response:
        # The model is chosen per resource, so it is validated here rather than in the signature.
        changes, secret = _changes(model.model_validate(body), "userPassword")
        control.settings.update(name, changes, secret)
        return empty_response()


_email_routes("VBOEmailSettings", "vbo", VboEmailSettingsIn)
_email_routes("VEXEmailSettings", "vex", ExplorerEmailSettingsIn)
_email_routes("VESPEmailSettings", "vesp", ExplorerEmailSettingsIn)
_email_routes("VEODEmailSettings", "veod", ExplorerEmailSettingsIn)
