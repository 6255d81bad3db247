"""The FastAPI application factory: v3 routes, conventions, auth, OpenAPI under /swagger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute

from m365vault import __version__
from m365vault.api import errors
from m365vault.api.auth import BearerAuth, token_router
from m365vault.api.casing import CaseInsensitivePaths
from m365vault.api.v3 import (
    explore_files,
    explore_vex,
    infrastructure,
    jobs,
    organizations,
    sessions,
    settings,
)
from m365vault.api.v3.explore_lifecycle import install_restore
from m365vault.api.wire import json_response
from m365vault.control.facade import Control
from m365vault.control.restore_actions import RestoreActions


def create_app(control: Control, restore: RestoreActions | None = None) -> FastAPI:
    app = FastAPI(
        title="m365vault REST API",
        version=__version__,
        description="Wire-compatible with the Veeam Backup for Microsoft 365 REST API v3. "
        "Authenticate with POST /v3/Token, then send `Authorization: Bearer <access_token>`.",
        docs_url="/swagger",
        redoc_url=None,
        openapi_url="/swagger/v3/swagger.json",
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.control = control
    errors.install(app)
    routers = [token_router(control.accounts)] + [
        module.router for module in (organizations, jobs, infrastructure, sessions, settings)
    ]
    routers += [explore_vex.router, explore_files.router]
    install_restore(app, restore)
    for router in routers:
        app.include_router(router)

    @app.get("/health", tags=["Server"], summary="200 when the server is ready (no auth)")
    def health() -> Response:
        return json_response({"status": "ok", "version": __version__})

    def openapi() -> dict[str, Any]:
        # Validation failures answer 400 {"message"} here, never FastAPI's 422: drop it from the spec.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            # Swagger UI's "Authorize" takes the access_token from POST /v3/Token.
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}]
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
                    if path in ("/v3/Token", "/health"):
                        operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    def route_paths() -> Iterable[str]:
        # The routers' own route lists (the app wraps included routers, so read them at the source).
        return [r.path for router in routers for r in router.routes if isinstance(r, APIRoute)]

    # Outermost first: fix the path's case, then require a bearer token.
    app.add_middleware(BearerAuth, accounts=control.accounts)
    app.add_middleware(CaseInsensitivePaths, route_paths=route_paths)
    return app
