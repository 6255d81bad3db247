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


class SiteTargets:
    """Libraries and lists of target sites by name (any case), each site listed once per restore."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client
        self._libraries: dict[str, dict[str, str]] = {}
        self._lists: dict[str, dict[str, str]] = {}

    async def library(self, site_id: str, name: str) -> str | None:
        """The drive id of the site's document library called `name`."""
        if site_id not in self._libraries:
            self._libraries[site_id] = {
                str(drive.get("name", "")).casefold(): str(drive["id"])
                async for drive in enumeration.list_site_drives(self._client, site_id)
            }
        return self._libraries[site_id].get(name.strip().casefold())

    async def list(self, site_id: str, name: str) -> str | None:
        """The id of the site's list (not a document library) called `name` (display or URL name)."""
        if site_id not in self._lists:
            found: dict[str, str] = {}
            async for item in enumeration.list_lists(self._client, site_id):
                if (item.get("list") or {}).get("template") == "documentLibrary":
                    continue
                for key in (item.get("displayName"), item.get("name")):
                    if key:
                        found.setdefault(str(key).casefold(), str(item["id"]))
            self._lists[site_id] = found
        return self._lists[site_id].get(name.strip().casefold())
