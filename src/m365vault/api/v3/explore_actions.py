"""Strict parsing of the explore trees' `/Action` bodies (v3 §8.4, §9.2, §10.2).

Exactly one action key (any case) among those the level accepts; its value is null or an object
whose properties (any case) are those the action knows; booleans may be strings; a list of
elements (`items`, `documents`, `folders`) is required on collection endpoints and refused
elsewhere. `userName` / `userPassword` are accepted and ignored: the organization's application
credentials do the writing. Anything else is a 400 that changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m365vault.api.v3.actions import _bool, _pairs_without_repeats
from m365vault.api.wire import BadInput, load_json

CREDENTIALS = ("username", "userpassword")
MAIL_RESTORE = ("changeditems", "deleteditems", "markrestoredasunread")
DOC_RESTORE = (
    "documentversion",
    "documentaction",
    "documentlastversionaction",
    "changeditems",
    "deleteditems",
    "restorepermissions",
    "sendsharedlinksnotification",
)
SEND = ("from", "to", "subject", "text")

# Canonical action name -> the properties it accepts (lower case), besides the element lists.
MAIL_ACTIONS: dict[str, tuple[str, ...]] = {
    "exporttoPst": ("contentkeywords", "enablepstsizelimit", "pstsizelimitbytes"),
    "exportToMbox": (),
    "savetoMsg": (),
    "saveToEml": (),
    "sendtoDefaultAddress": (),
    "sendtoDifferentAddress": SEND,
    "restoretoOriginallocation": (
        *CREDENTIALS,
        *MAIL_RESTORE,
        "excludedrafts",
        "excludedeleteditems",
        "excludeinplaceholditems",
        "excludelitigationholditems",
    ),
    "restoreTo": (*CREDENTIALS, *MAIL_RESTORE, "casserver", "mailbox", "folder"),
}
DOCUMENT_ACTIONS: dict[str, tuple[str, ...]] = {
    "save": ("aszip",),
    "send": SEND,
    "restoretoOriginallocation": (*CREDENTIALS, *DOC_RESTORE),
    "copyTo": (*CREDENTIALS, *DOC_RESTORE, "onedrive", "folder"),
    "restoreTo": (
        *CREDENTIALS,
        *DOC_RESTORE,
        "list",
        "alias",
        "restorelistviews",
        "restoresubsites",
        "restoremasterpages",
        "folder",
    ),
}

# `/OneDrives/Action`: the bulk restore of whole OneDrives to their owners (element list `oneDrives`).
BULK_ONEDRIVE_ACTIONS: dict[str, tuple[str, ...]] = {
    "restoretoOriginallocation": (
        "officeusername",
        "officepassword",
        "onpremisesusername",
        "onpremisespassword",
        "skipunresolved",
        "documentversion",
        "documentaction",
        "changeditems",
        "deleteditems",
    ),
}


@dataclass(frozen=True)
class ParsedAction:
    name: str  # canonical spelling
    options: dict[str, Any]  # lower-case property -> value (element lists removed)
    ids: tuple[str, ...] | None  # `items` / `documents` (None when not given)
    folder_ids: tuple[str, ...] = ()

    def flag(self, key: str, default: bool) -> bool:
        return _bool(self.options[key], key) if self.options.get(key) is not None else default

    def text(self, key: str) -> str | None:
        value = self.options.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float):
            raise BadInput(f"'{key}' must be a string.")
        return str(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(key)
        if value is None:
            return default
        for option in allowed:
            if option.casefold() == value.strip().casefold():
                return option
        raise BadInput(f"'{key}' must be one of: {', '.join(allowed)}.")


def _ids(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadInput(f"'{name}' must be a non-empty list of {{\"id\": ...}} objects.")
    out: list[str] = []
    for element in value:
        if isinstance(element, dict):
            folded = {str(k).casefold(): v for k, v in element.items()}
            if set(folded) - {"id", "name", "url", "version"}:
                raise BadInput(f"Elements of '{name}' take only 'id'.")
            element = folded.get("id")
        if not isinstance(element, str) or not element.strip():
            raise BadInput(f"Every element of '{name}' needs an 'id'.")
        out.append(element.strip())
    return tuple(out)


def parse(
    body: bytes,
    actions: dict[str, tuple[str, ...]],
    allowed: tuple[str, ...],
    *,
    lists: tuple[str, ...] = (),
    list_required: bool = False,
) -> ParsedAction:
    """`allowed` names the actions of this level; `lists` the element lists it takes
    ("items", "documents", "folders"); `list_required` on collection endpoints."""
    document = load_json(body, _pairs_without_repeats) if body.strip() else None
    expected = ", ".join(allowed)
    if not isinstance(document, dict) or len(document) != 1:
        raise BadInput(f"The request body must hold exactly one action, one of: {expected}.")
    ((key, value),) = document.items()
    name = next((a for a in allowed if a.casefold() == key.casefold()), None)
    if name is None:
        raise BadInput(f"Unknown action '{key}'; expected one of: {expected}.")
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise BadInput(f"The value of '{name}' must be null or an object.")
    known = set(actions[name]) | set(lists)
    options: dict[str, Any] = {}
    for prop, item in value.items():
        folded = str(prop).casefold()
        if folded not in known:
            raise BadInput(f"Unknown property '{prop}' for '{name}'.")
        options[folded] = item
    ids = _ids(options.pop("items"), "items") if options.get("items") is not None else None
    if options.get("documents") is not None:
        ids = _ids(options.pop("documents"), "documents")
    if options.get("onedrives") is not None:
        ids = _ids(options.pop("onedrives"), "oneDrives")
    folder_ids = _ids(options.pop("folders"), "folders") if options.get("folders") is not None else ()
    options = {k: v for k, v in options.items() if k not in ("items", "documents", "folders", "onedrives")}
    if list_required and ids is None and not folder_ids:
        raise BadInput(f"'{name}' here needs the elements to act on: {' or '.join(lists)}.")
    return ParsedAction(name, options, ids, folder_ids)


def action_links(uri: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: {"uri": uri, "method": "POST"} for name in names}


def body_schema(names: tuple[str, ...]) -> dict[str, Any]:
    options = [
        {"type": "object", "properties": {name: {"nullable": True, "type": "object"}}, "required": [name]}
        for name in names
    ]
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": options}}}}
    }
