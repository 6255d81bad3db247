"""One place that turns every failure into a v3 error body `{"message": ...}`.

Domain errors map to fixed codes; request-validation failures become 400 with a readable message;
anything unexpected becomes a 500 whose message says nothing of the internals (and is logged).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from m365vault.api.wire import BadInput, message_response
from m365vault.control.errors import (
    AuthenticationFailed,
    ControlError,
    Forbidden,
    InvalidRequest,
    LoginThrottled,
    NotAvailable,
    NotFound,
)

log = logging.getLogger("m365vault.api")

STATUS = {
    NotFound: 404,
    InvalidRequest: 400,
    Forbidden: 403,
    NotAvailable: 501,
    AuthenticationFailed: 401,
    LoginThrottled: 429,
}


def _status(exc: ControlError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def validation_message(errors: list[dict[str, Any]] | Any) -> str:
    """A one-line message from pydantic/FastAPI errors, naming the property as the client sent it."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    kind = first.get("type", "")
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    if kind == "missing" and not loc:
        return "A JSON request body is required."
    where = ".".join(loc)
    msg = str(first.get("msg", "invalid value"))
    if kind in ("model_attributes_type", "dict_type") and not loc:
        return "The request body must be a JSON object."
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return f"Invalid value for '{where}': {msg}." if where else f"Invalid request: {msg}."


def install(app: FastAPI) -> None:
    @app.exception_handler(ControlError)
    async def control_error(_request: Request, exc: ControlError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, LoginThrottled) else None
        return message_response(_status(exc), exc.message, headers)

    @app.exception_handler(BadInput)
    async def bad_input(_request: Request, exc: BadInput) -> Response:
        return message_response(400, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return message_response(400, validation_message(exc.errors()))

    @app.exception_handler(ValidationError)
    async def invalid_model(_request: Request, exc: ValidationError) -> Response:
        return message_response(400, validation_message(exc.errors()))

    @app.exception_handler(DataError)
    async def unstorable(_request: Request, exc: DataError) -> Response:
        # The database refused a value (too long, out of range): the client's input, not our fault.
        log.info("value refused by the database: %s", type(exc.orig).__name__)
        return message_response(400, "A value in the request is too long or out of range.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"No resource matches '{request.url.path}'."
        elif exc.status_code == 405:
            message = f"The method {request.method} is not allowed on '{request.url.path}'."
        else:
            message = str(exc.detail)
        return message_response(exc.status_code, message, exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return message_response(500, "The server failed to process the request.")
