"""Discovery: users (with their mailbox and OneDrive), groups, sites, drives and lists (§2).

Whether a user has a mailbox or a OneDrive is not a property Graph returns; it is probed:
- mailbox: `GET /users/{id}/mailboxSettings`. A 404 with MailboxNotEnabledForRESTAPI /
  ErrorInvalidUser / ResourceNotFound (or any 404) means "no mailbox" (guests, unlicensed users,
  on-premises mailboxes). The answer also carries `userPurpose` (user / shared / room ...), when the
  service provides it. Cost: one Exchange request in that mailbox's lane.
- OneDrive: `GET /users/{id}/drive`. A 404 means it was never provisioned (or there is no SharePoint
  licence). Cost: one SharePoint resource unit.
So a full probe costs two requests per user; `discover_users` sends them through `$batch` (20 per
round trip, each still charged to its own mailbox's or SharePoint's budget), a few batches at a
time, and lets the caller switch either probe off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from m365vault.m365.batch import MAX_REQUESTS, BatchGet, Outcome, get_many
from m365vault.m365.client import GraphClient, segment
from m365vault.m365.errors import GraphError, GraphForbidden, GraphNotFound
from m365vault.m365.paging import Page, items, pages
from m365vault.m365.throttle import Scope

USER_FIELDS = "id,userPrincipalName,mail,displayName,accountEnabled,userType,onPremisesSyncEnabled"
GROUP_FIELDS = "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,visibility,description"
SITE_FIELDS = "id,name,displayName,webUrl,siteCollection,root,createdDateTime,lastModifiedDateTime"
DRIVE_FIELDS = "id,name,driveType,webUrl,owner,quota,createdDateTime,lastModifiedDateTime"
LIST_FIELDS = "id,name,displayName,list,system,createdDateTime,lastModifiedDateTime,webUrl"
THREAD_FIELDS = (
    "id,topic,lastDeliveredDateTime,uniqueSenders,toRecipients,ccRecipients,hasAttachments,preview,isLocked"
)


@dataclass(frozen=True)
class DiscoveredUser:
    user: dict[str, Any]  # raw Graph user
    has_mailbox: bool | None  # None: not probed, or the probe was refused (see probe_errors)
    mailbox_settings: dict[str, Any] | None
    onedrive: dict[str, Any] | None  # the drive, or None (absent or not probed)
    onedrive_probed: bool
    probe_errors: list[str] = field(default_factory=list)  # one user's 403s do not fail a listing

    @property
    def id(self) -> str:
        return str(self.user["id"])

    @property
    def mailbox_purpose(self) -> str | None:
        purpose = (self.mailbox_settings or {}).get("userPurpose")
        return purpose if isinstance(purpose, str) else None


def list_users(
    client: GraphClient, *, filter: str | None = None, select: str = USER_FIELDS, page_size: int = 999
) -> AsyncIterator[Page]:
    """Pages of users. A `filter` is sent as an advanced query (ConsistencyLevel + $count)."""
    params = {"$select": select, "$top": str(page_size)}
    headers: dict[str, str] = {}
    if filter:
        params.update({"$filter": filter, "$count": "true"})
        headers["ConsistencyLevel"] = "eventual"
    return pages(client, "/users", scope=Scope.directory(), params=params, headers=headers)


async def get_user(client: GraphClient, user_id: str, *, select: str = USER_FIELDS) -> dict[str, Any]:
    return await client.get_json(
        f"/users/{segment(user_id)}", scope=Scope.directory(), params={"$select": select}
    )


def mailbox_settings_request(user_id: str) -> BatchGet:
    return BatchGet(f"/users/{segment(user_id)}/mailboxSettings", scope=Scope.mailbox(user_id))


def user_drive_request(user_id: str) -> BatchGet:
    return BatchGet(
        f"/users/{segment(user_id)}/drive", params={"$select": DRIVE_FIELDS}, scope=Scope.sharepoint()
    )


async def _get(client: GraphClient, request: BatchGet) -> dict[str, Any] | None:
    """One probe on its own: its body, or None for a 404."""
    assert request.scope is not None  # every probe names its lane
    try:
        return await client.get_json(request.url, scope=request.scope, params=request.params)
    except GraphNotFound:
        return None


async def get_mailbox_settings(client: GraphClient, user_id: str) -> dict[str, Any] | None:
    """The user's mailboxSettings, or None when the user has no reachable mailbox."""
    return await _get(client, mailbox_settings_request(user_id))


async def get_user_drive(client: GraphClient, user_id: str) -> dict[str, Any] | None:
    """The user's OneDrive, or None when it was never provisioned."""
    return await _get(client, user_drive_request(user_id))


def _found(outcome: Outcome) -> dict[str, Any] | None:
    """A probe's body, or None for a 404; any other error is raised."""
    if isinstance(outcome, GraphNotFound):
        return None
    if isinstance(outcome, GraphError):
        raise outcome
    return outcome


def _probed(
    outcome: Outcome | None, what: str, errors: list[str]
) -> tuple[bool | None, dict[str, Any] | None]:
    """(found, body) of one probe's outcome: a 404 is "absent", a 403 is noted in `errors` (one
    user's refusal does not fail a listing) and leaves it unknown; other errors fail the listing."""
    if outcome is None:
        return None, None
    if isinstance(outcome, GraphForbidden):  # e.g. an application access policy on this mailbox
        errors.append(f"{what}: {outcome.reason}")
        return None, None
    body = _found(outcome)
    return body is not None, body


async def discover_users(
    client: GraphClient,
    *,
    probe_mailbox: bool = True,
    probe_onedrive: bool = True,
    concurrency: int = 8,
    filter: str | None = None,
) -> AsyncIterator[list[DiscoveredUser]]:
    """Pages of users with their mailbox / OneDrive probed (see the module docstring for the cost)."""
    gate = asyncio.Semaphore(concurrency)
    per_user = int(probe_mailbox) + int(probe_onedrive)

    async def probe(users: list[dict[str, Any]]) -> list[DiscoveredUser]:
        requests: list[BatchGet] = []
        for user in users:
            uid = str(user["id"])
            if probe_mailbox:
                requests.append(mailbox_settings_request(uid))
            if probe_onedrive:
                requests.append(user_drive_request(uid))
        async with gate:
            outcomes = iter(await get_many(client, requests, scope=Scope.directory()))
        found: list[DiscoveredUser] = []
        for user in users:
            errors: list[str] = []
            has_mailbox, settings = _probed(next(outcomes) if probe_mailbox else None, "mailbox", errors)
            _, drive = _probed(next(outcomes) if probe_onedrive else None, "onedrive", errors)
            found.append(
                DiscoveredUser(
                    user=user,
                    has_mailbox=has_mailbox,
                    mailbox_settings=settings,
                    onedrive=drive,
                    onedrive_probed=probe_onedrive,
                    probe_errors=errors,
                )
            )
        return found

    # One batch's worth of users per probe, so the gate bounds round trips in flight.
    size = MAX_REQUESTS // max(1, per_user)
    async for page in list_users(client, filter=filter):
        chunks = [page.items[start : start + size] for start in range(0, len(page.items), size)]
        yield [found for chunk in await asyncio.gather(*(probe(c) for c in chunks)) for found in chunk]


def list_groups(
    client: GraphClient, *, unified_only: bool = False, select: str = GROUP_FIELDS, page_size: int = 999
) -> AsyncIterator[Page]:
    """Pages of groups; `unified_only` keeps Microsoft 365 groups (those with a mailbox and a site)."""
    params = {"$select": select, "$top": str(page_size)}
    if unified_only:
        params["$filter"] = "groupTypes/any(c:c eq 'Unified')"
    return pages(client, "/groups", scope=Scope.directory(), params=params)


def is_unified(group: dict[str, Any]) -> bool:
    """A Microsoft 365 group: it has a mailbox (conversations) and a team site."""
    return "Unified" in (group.get("groupTypes") or []) and group.get("mailEnabled") is not False


def list_group_threads(
    client: GraphClient, group_id: str, *, select: str = THREAD_FIELDS, page_size: int = 50
) -> AsyncIterator[Page]:
    """Pages of a group mailbox's threads (every conversation's), newest delivery first.

    There is no delta for conversations: callers list every thread each time and use
    `lastDeliveredDateTime` (which moves with each new post) to find new and changed ones. A group
    mailbox is an Exchange mailbox, so its requests go through its own mailbox lane.
    """
    return pages(
        client,
        f"/groups/{segment(group_id)}/threads",
        scope=Scope.mailbox(group_id),
        params={"$select": select, "$top": str(page_size)},
    )


async def get_group_drive(client: GraphClient, group_id: str) -> dict[str, Any] | None:
    try:
        return await client.get_json(f"/groups/{segment(group_id)}/drive", scope=Scope.sharepoint())
    except GraphNotFound:
        return None


def group_site_request(group_id: str) -> BatchGet:
    return BatchGet(f"/groups/{segment(group_id)}/sites/root", scope=Scope.sharepoint())


async def get_group_site(client: GraphClient, group_id: str) -> dict[str, Any] | None:
    return await _get(client, group_site_request(group_id))


async def get_group_sites(client: GraphClient, group_ids: Sequence[str]) -> list[dict[str, Any] | None]:
    """`get_group_site` of many groups through `$batch` (20 per round trip)."""
    requests = [group_site_request(group_id) for group_id in group_ids]
    return [_found(outcome) for outcome in await get_many(client, requests, scope=Scope.sharepoint())]


def is_personal_site(site: dict[str, Any]) -> bool:
    """OneDrive sites show up in getAllSites; they are backed up through their users instead."""
    if site.get("isPersonalSite") is True:
        return True
    url = str(site.get("webUrl") or "").lower()
    return "-my.sharepoint." in url and "/personal/" in url


async def list_sites(
    client: GraphClient, *, include_personal: bool = False, select: str = SITE_FIELDS
) -> AsyncIterator[Page]:
    """Pages of every site in the tenant (`/sites/getAllSites`, app-only), personal sites filtered out."""
    async for page in pages(
        client, "/sites/getAllSites", scope=Scope.sharepoint(), cost=2, params={"$select": select}
    ):
        kept = page.items if include_personal else [s for s in page.items if not is_personal_site(s)]
        yield Page(kept, page.next_link)


async def get_site(client: GraphClient, site_id: str) -> dict[str, Any]:
    return await client.get_json(f"/sites/{segment(site_id)}", scope=Scope.sharepoint())


def list_subsites(client: GraphClient, site_id: str) -> AsyncIterator[dict[str, Any]]:
    return items(client, f"/sites/{segment(site_id)}/sites", scope=Scope.sharepoint(), cost=2)


def list_site_drives(client: GraphClient, site_id: str) -> AsyncIterator[dict[str, Any]]:
    """Document libraries of a site, one drive each."""
    return items(
        client,
        f"/sites/{segment(site_id)}/drives",
        scope=Scope.sharepoint(),
        cost=2,
        params={"$select": DRIVE_FIELDS},
    )


async def get_drive(client: GraphClient, drive_id: str) -> dict[str, Any]:
    return await client.get_json(f"/drives/{segment(drive_id)}", scope=Scope.sharepoint())


async def get_drive_item(client: GraphClient, drive_id: str, item_id: str) -> dict[str, Any]:
    return await client.get_json(
        f"/drives/{segment(drive_id)}/items/{segment(item_id)}", scope=Scope.sharepoint()
    )


async def find_drive_item(client: GraphClient, drive_id: str, path: str) -> dict[str, Any] | None:
    """The item at `path` ("Folder/file.txt", relative to the drive root), or None if absent.

    Restore uses it to find the original parent folder of an item by its backed-up path.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        return await client.get_json(f"/drives/{segment(drive_id)}/root", scope=Scope.sharepoint())
    quoted = "/".join(quote(p, safe="") for p in parts)
    try:
        return await client.get_json(f"/drives/{segment(drive_id)}/root:/{quoted}:", scope=Scope.sharepoint())
    except GraphNotFound:
        return None


async def list_lists(
    client: GraphClient, site_id: str, *, include_system: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """Lists of a site; system lists (the `system` facet) are skipped unless asked for."""
    async for item in items(
        client,
        f"/sites/{segment(site_id)}/lists",
        scope=Scope.sharepoint(),
        cost=2,
        params={"$select": LIST_FIELDS},
    ):
        if include_system or "system" not in item:
            yield item


async def list_mail_folders(
    client: GraphClient, user_id: str, parent_id: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Child folders of `parent_id` (top level when None), including hidden ones; not recursive."""
    base = f"/users/{segment(user_id)}/mailFolders"
    path = f"{base}/{segment(parent_id)}/childFolders" if parent_id else base
    async for item in items(
        client,
        path,
        scope=Scope.mailbox(user_id),
        params={"includeHiddenFolders": "true", "$top": "100"},
        headers={"Prefer": 'IdType="ImmutableId"'},
    ):
        yield item
