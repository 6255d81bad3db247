"""Following OData collections page by page (graph-protocol.md §2).

Next links are followed verbatim (they carry every query option); request headers are not carried
by them, so the same headers are sent on every page. A page may be empty and still have a next link.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from m365vault.m365.client import GraphClient
from m365vault.m365.errors import GraphPermanent
from m365vault.m365.throttle import Scope


@dataclass(frozen=True)
class Page:
    """One page of a collection: raw Graph objects and the link to the next page (None at the end)."""

    items: list[dict[str, Any]]
    next_link: str | None


def page_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = body.get("value")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise GraphPermanent("Graph collection page has no 'value' list")
    return value


async def pages(
    client: GraphClient,
    path: str,
    *,
    scope: Scope,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    cost: float = 1.0,
) -> AsyncIterator[Page]:
    """Every page of the collection at `path` (or a next link to resume from)."""
    url: str | None = path
    first = True
    while url is not None:
        body = await client.get_json(
            url, scope=scope, cost=cost, params=params if first else None, headers=headers
        )
        first = False
        next_link = body.get("@odata.nextLink")
        url = next_link if isinstance(next_link, str) and next_link else None
        yield Page(page_items(body), url)


async def items(
    client: GraphClient,
    path: str,
    *,
    scope: Scope,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    cost: float = 1.0,
) -> AsyncIterator[dict[str, Any]]:
    """Every object of the collection, one page in memory at a time."""
    async for page in pages(client, path, scope=scope, params=params, headers=headers, cost=cost):
        for item in page.items:
            yield item
