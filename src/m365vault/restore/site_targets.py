"""Where SharePoint content goes back to: a site named by Vesp `restoreTo`'s `alias`, a library or
list named by its `list`, looked up in the tenant."""

from __future__ import annotations

from urllib.parse import urlsplit

from m365vault.m365 import GraphClient, GraphError, GraphNotFound, Scope, enumeration
from m365vault.m365.client import segment


async def resolve_site(client: GraphClient, alias: str) -> str | None:
    """A site id from a Graph site id or a site URL (`https://host/sites/name`); None if the
    tenant has no such site."""
    alias = alias.strip()
    if alias.casefold().startswith(("https://", "http://")):
        parts = urlsplit(alias)
        path = f"/sites/{parts.hostname}:{parts.path.rstrip('/') or '/'}"
    else:
        path = f"/sites/{segment(alias)}"
    try:
        site = await client.get_json(path, scope=Scope.sharepoint())
    except GraphNotFound:
        return None
    except GraphError as err:
        if err.status == 400:
            return None  # not a site key Graph understands
        raise
    return str(site["id"])


async def find_library(client: GraphClient, site_id: str, name: str) -> str | None:
    """The drive id of the site's document library called `name` (any case)."""
    wanted = name.strip().casefold()
    async for drive in enumeration.list_site_drives(client, site_id):
        if str(drive.get("name", "")).casefold() == wanted:
            return str(drive["id"])
    return None


async def find_list(client: GraphClient, site_id: str, name: str) -> str | None:
    """The id of the site's list called `name` (display name or URL name, any case)."""
    wanted = name.strip().casefold()
    async for item in enumeration.list_lists(client, site_id):
        names = {str(item.get("displayName", "")).casefold(), str(item.get("name", "")).casefold()}
        if wanted in names:
            return str(item["id"])
    return None
