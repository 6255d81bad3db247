"""Authentication: `POST /v3/Token` (OWIN-style OAuth password and refresh_token grants) and the
bearer check in front of every other v3 route.

The check is an ASGI middleware rather than a route dependency so that it runs before anything
else looks at the request: without a valid token a client learns nothing (not even whether its
JSON was well-formed or the route exists) and always gets 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from m365vault.api.wire import JSON_MEDIA_TYPE, BadInput, has_lone_surrogates, load_json, rfc1123
from m365vault.control.accounts import ACCESS_TOKEN_LIFETIME, Accounts, Principal
from m365vault.control.errors import AuthenticationFailed, InvalidRequest, LoginThrottled

TOKEN_PATH = "/v3/token"
UNAUTHORIZED = "Authorization has been denied for this request."


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.casefold() == "bearer" else ""
    return ""


class BearerAuth:
    """Resolves `Authorization: Bearer` on /v3 paths (except the token endpoint) or answers 401."""

    def __init__(self, app: ASGIApp, accounts: Accounts, prefix: str = "/v3") -> None:
        self.app = app
        self._accounts = accounts
        self._prefix = prefix.casefold()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").casefold().rstrip("/")
        if scope["type"] != "http" or not path.startswith(self._prefix) or path == TOKEN_PATH:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        try:
            principal = await anyio.to_thread.run_sync(self._accounts.authenticate, token)
        except AuthenticationFailed:
            response = JSONResponse(
                {"message": UNAUTHORIZED},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
                media_type=JSON_MEDIA_TYPE,
            )
            await response(scope, receive, send)
            return
        scope = {**scope, "state": {**scope.get("state", {}), "principal": principal}}
        await self.app(scope, receive, send)


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # routes outside the middleware's reach
        raise AuthenticationFailed(UNAUTHORIZED)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def _oauth_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type=JSON_MEDIA_TYPE,
    )


async def _token_fields(request: Request) -> dict[str, str]:
    """Form fields (the v3 way) or a JSON object (later versions), keys matched case-insensitively."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().casefold()
    raw: Mapping[str, Any]
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception as exc:  # python-multipart raises several kinds on damaged bodies
            raise InvalidRequest("The form body cannot be read.") from exc
        raw = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        try:
            parsed = load_json(await request.body() or b"{}")
        except BadInput as exc:
            raise InvalidRequest("The request body is neither form data nor a JSON object.") from exc
        if not isinstance(parsed, dict):
            raise InvalidRequest("The request body is neither form data nor a JSON object.")
        raw = parsed
    fields = {str(k).casefold(): v for k, v in raw.items() if isinstance(v, str)}
    if any("\x00" in v or has_lone_surrogates(v) for v in fields.values()):
        raise InvalidRequest("The request contains characters that are not allowed.")
    return fields


def token_router(accounts: Accounts) -> APIRouter:
    router = APIRouter(tags=["Authentication"])

    @router.post(
        "/v3/Token",
        summary="Obtain or refresh an access token",
        description="Form body `grant_type=password&username=..&password=..` or "
        "`grant_type=refresh_token&refresh_token=..` (a JSON object with the same fields works too).",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
                                "username": {"type": "string"},
                                "password": {"type": "string", "format": "password"},
                                "refresh_token": {"type": "string"},
                            },
                        }
                    }
                }
            }
        },
    )
    async def token(request: Request) -> Response:
        try:
            fields = await _token_fields(request)
        except InvalidRequest as exc:
            return _oauth_error(400, "invalid_request", exc.message)
        grant = fields.get("grant_type", "")
        address = request.client.host if request.client else "unknown"
        try:
            if grant == "password":
                if not fields.get("username") or "password" not in fields:
                    return _oauth_error(400, "invalid_request", "username and password are required.")
                issued = await anyio.to_thread.run_sync(
                    accounts.login, fields["username"], fields["password"], address
                )
            elif grant == "refresh_token":
                if not fields.get("refresh_token"):
                    return _oauth_error(400, "invalid_request", "refresh_token is required.")
                issued = await anyio.to_thread.run_sync(accounts.refresh, fields["refresh_token"], address)
            else:
                return _oauth_error(
                    400, "unsupported_grant_type", "grant_type must be password or refresh_token."
                )
        except LoginThrottled as exc:
            return _oauth_error(429, "invalid_grant", exc.message, {"Retry-After": str(exc.retry_after)})
        except AuthenticationFailed as exc:
            return _oauth_error(400, "invalid_grant", exc.message)
        body = {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "refresh_token": issued.refresh_token,
            "userName": issued.user_name,
            ".issued": rfc1123(issued.issued),
            ".expires": rfc1123(issued.expires),
        }
        return JSONResponse(
            body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}, media_type=JSON_MEDIA_TYPE
        )

    return router
