"""Shared route dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Query, Request

from m365vault.api.wire import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Links
from m365vault.control.facade import Control


def _control(request: Request) -> Control:
    return cast(Control, request.app.state.control)


def _links(request: Request) -> Links:
    return Links(request)


ControlDep = Annotated[Control, Depends(_control)]
LinksDep = Annotated[Links, Depends(_links)]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Skip this many elements")]
# Bare-array collections return everything unless a limit is given; page objects default to 30.
OptionalLimit = Annotated[
    int | None, Query(ge=1, le=MAX_PAGE_LIMIT, description="At most this many elements")
]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description="Page size (default 30)")]
__all__ = ["DEFAULT_PAGE_LIMIT", "ControlDep", "LinksDep", "Offset", "OptionalLimit", "PageLimit"]
