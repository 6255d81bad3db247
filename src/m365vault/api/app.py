"""The FastAPI application factory: v3 routes, conventions, auth, OpenAPI under /swagger."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

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

SWAGGER_ASSETS = "/swagger/assets"


def create_app(control: Control, restore: RestoreActions | None = None) -> FastAPI:
    app = FastAPI(
        title="m365vault REST API",
        version=__version__,
        description="Wire-compatible with the Veeam Backup for Microsoft 365 REST API v3. "
        "Authenticate with POST /v3/Token, then send `Authorization: Bearer <access_token>`.",
        docs_url=None,  # served below from a packaged Swagger UI: the server must work offline
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

    _mount_swagger_ui(app)

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


def _mount_swagger_ui(app: FastAPI) -> None:
    """Swagger UI at /swagger with its assets from the fastapi-offline wheel (Swagger UI 5, which
    reads OpenAPI 3.1), so the page renders on machines without internet access."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=assets), name="swagger-assets")

    @app.get("/swagger", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=str(app.openapi_url),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon.png",
        )
