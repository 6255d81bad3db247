"""Strict parsing of `/Action` bodies: exactly one action key (any case), nothing repeated,
values of the right shape. A body that fails here changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m365vault.api.wire import BadInput, load_json, parse_point_in_time
from m365vault.control.enums import RestoreSessionType
from m365vault.control.sessions import ExploreRequest

JOB_ACTIONS = ("enable", "disable", "start", "stop", "explore")


@dataclass(frozen=True)
class Action:
    name: str
    explore: ExploreRequest | None = None


def _pairs_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        folded = key.casefold()
        if folded in seen:
            raise BadInput(f"The property '{key}' is given more than once.")
        seen[folded] = value
    return seen


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().casefold() in ("true", "false"):
        return value.strip().casefold() == "true"
    if value is None:
        return False
    raise BadInput(f"'{name}' must be true or false.")


def parse_explore(value: Any) -> ExploreRequest:
    if not isinstance(value, dict):
        raise BadInput(
            "'explore' must be an object with 'type' and optionally "
            "'datetime', 'showDeleted', 'showAllVersions'."
        )
    allowed = {"datetime", "type", "showdeleted", "showallversions"}
    unknown = set(value) - allowed
    if unknown:
        raise BadInput(f"Unknown explore property '{sorted(unknown)[0]}'.")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise BadInput("'explore' needs 'type': vex, vesp or veod.")
    try:
        session_type = RestoreSessionType(kind)
    except ValueError as exc:
        raise BadInput(f"Unknown explore type '{kind}'; expected vex, vesp or veod.") from exc
    return ExploreRequest(
        type=session_type,
        point_in_time=parse_point_in_time(value.get("datetime")),
        show_deleted=_bool(value.get("showdeleted"), "showDeleted"),
        show_all_versions=_bool(value.get("showallversions"), "showAllVersions"),
    )


def parse_action(body: bytes, allowed: tuple[str, ...]) -> Action:
    """Parse an action body; `allowed` lists the action names this resource accepts."""
    document = load_json(body, _pairs_without_repeats) if body.strip() else None
    expected = ", ".join(allowed)
    if not isinstance(document, dict):
        raise BadInput(f"The request body must be a JSON object with exactly one action: {expected}.")
    if len(document) != 1:
        raise BadInput(f"The request body must hold exactly one action, one of: {expected}.")
    ((name, value),) = document.items()
    if name not in allowed:
        raise BadInput(f"Unknown action '{name}'; expected one of: {expected}.")
    if name == "explore":
        return Action(name, parse_explore(value))
    if value not in (None, {}):
        raise BadInput(f"The '{name}' action takes no value (send {{\"{name}\": null}}).")
    return Action(name)


def action_schema(allowed: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI request body for an action endpoint (the body is parsed by hand, strictly)."""
    explore = {
        "type": "object",
        "properties": {
            "datetime": {"type": "string", "example": "2019-04-12T10:54:40.2794046Z"},
            "type": {"type": "string", "enum": ["vex", "vesp", "veod"]},
            "showDeleted": {"type": "boolean"},
            "showAllVersions": {"type": "boolean"},
        },
        "required": ["type"],
    }
    options = [
        {
            "type": "object",
            "properties": {name: (explore if name == "explore" else {"nullable": True})},
            "required": [name],
            "additionalProperties": False,
        }
        for name in allowed
    ]
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": options}}}}
    }
