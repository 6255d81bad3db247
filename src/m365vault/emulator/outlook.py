"""What every Outlook item's JSON starts with (messages, events, contacts, archive mailboxItems)."""

from __future__ import annotations

from typing import Any

from m365vault.emulator.clock import iso


def item_head(odata_type: str, item_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """Type, weak etag (the changeKey), id, creation and modification times and changeKey."""
    ck = state["changeKey"]
    return {
        "@odata.type": odata_type,
        "@odata.etag": f'W/"{ck}"',
        "id": item_id,
        "createdDateTime": iso(state["createdDateTime"]),
        "lastModifiedDateTime": iso(state["lastModifiedDateTime"]),
        "changeKey": ck,
    }
