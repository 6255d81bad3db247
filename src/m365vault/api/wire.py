"""The v3 wire conventions as reusable pieces: lenient input models, output cleaning, timestamps,
absolute lower-case links, and the two collection shapes.

Input (what Json.NET accepted): property names in any case, booleans and numbers as strings, enum
values in any case. Output: lowerCamelCase names, PascalCase enums, nulls left out, UTC times with
seven fractional digits and a `Z`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

JSON_MEDIA_TYPE = "application/json; charset=utf-8"
DEFAULT_PAGE_LIMIT = 30
MAX_PAGE_LIMIT = 10_000


class BadInput(Exception):
    """A request the API layer itself rejects (400 with `message`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------ input
class V3Input(BaseModel):
    """Base of every v3 request body: property names match case-insensitively, unknown ones are
    ignored (as Json.NET does), and the same property given twice in different cases is refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _fold_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        _refuse_nul(data)
        canonical: dict[str, str] = {}
        for name, info in cls.model_fields.items():
            canonical[name.casefold()] = info.alias or name
            canonical[(info.alias or name).casefold()] = info.alias or name
        out: dict[str, Any] = {}
        for key, value in data.items():
            target = canonical.get(str(key).casefold(), str(key))
            if target in out:
                raise ValueError(f"property '{target}' is given more than once")
            out[target] = value
        return out

    def given(self) -> dict[str, Any]:
        """The properties the client sent with a non-null value, by field name."""
        return {k: getattr(self, k) for k in self.model_fields_set if getattr(self, k) is not None}


def _refuse_nul(value: Any) -> None:
    """NUL characters cannot be stored (PostgreSQL text refuses them) and never mean anything here."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_nul(str(key))
            _refuse_nul(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item)


def load_json(body: bytes, object_pairs_hook: Any = None) -> Any:
    """Parse a body we read by hand; every way it can be unreadable becomes BadInput."""
    try:
        return json.loads(body, object_pairs_hook=object_pairs_hook)
    except BadInput:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise BadInput("The request body is not valid JSON.") from exc


def has_lone_surrogates(text: str) -> bool:
    """JSON may carry "\ud800"; such text cannot be stored or compared in a database."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# ------------------------------------------------------------------ output
def clean(value: Any) -> Any:
    """Drop null properties at every depth and render datetimes as v3 timestamps."""
    if isinstance(value, Mapping):
        return {k: clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, datetime):
        return timestamp(value)
    return value


def timestamp(value: datetime) -> str:
    """UTC ISO 8601 with seven fractional digits, as .NET writes DateTime: 2019-02-04T16:49:22.8529769Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def rfc1123(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


class V3JSONResponse(JSONResponse):
    media_type = JSON_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return super().render(clean(content))


def json_response(content: Any, status_code: int = 200) -> V3JSONResponse:
    return V3JSONResponse(content, status_code=status_code)


def empty_response(status_code: int = 200) -> Response:
    """An action's success: status only, `Content-Length: 0`, no `{}`."""
    return Response(content=b"", status_code=status_code, media_type=JSON_MEDIA_TYPE)


def message_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> V3JSONResponse:
    return V3JSONResponse({"message": message}, status_code=status_code, headers=dict(headers or {}))


# ------------------------------------------------------------------ links
class Links:
    """Absolute, lower-case `_links` built from the request's scheme, host and port."""

    def __init__(self, request: Request) -> None:
        self.base = f"{request.url.scheme}://{request.url.netloc}/v3".lower()

    def href(self, *parts: object) -> str:
        return "/".join([self.base, *(str(p).lower() for p in parts)])

    def link(self, *parts: object) -> dict[str, str]:
        return {"href": self.href(*parts)}


# ------------------------------------------------------------------ collections
def page_object(
    request: Request, results: Sequence[Any], offset: int, limit: int, total: int
) -> dict[str, Any]:
    """The v3 page object: {offset, limit, results, _links{first, prev, self, next}}."""

    def at(off: int) -> dict[str, str]:
        url = request.url.include_query_params(offset=off, limit=limit)
        return {"href": str(url).lower()}

    links: dict[str, Any] = {"first": at(0)}
    if offset > 0:
        links["prev"] = at(max(0, offset - limit))
    links["self"] = at(offset)
    if offset + len(results) < total:
        links["next"] = at(offset + limit)
    return {"offset": offset, "limit": limit, "results": list(results), "_links": links}


def window(items: Sequence[Any], offset: int, limit: int | None) -> list[Any]:
    """offset/limit applied to a bare-array collection."""
    return list(items[offset : None if limit is None else offset + limit])


# ------------------------------------------------------------------ explore point in time
_DOTTED_DATE = re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})(?=$|[ T])")


def parse_point_in_time(value: Any) -> datetime | None:
    """The explore `datetime`: ISO 8601 (up to 7 fractional digits, Z or offset), `yyyy-MM-dd
    HH:mm:ss.SSS`, `yyyy.MM.dd HH:mm:ss` (24-hour), or a date alone. No zone means UTC. Empty
    or null means "now" (None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadInput("'datetime' must be a string.")
    text = value.strip()
    match = _DOTTED_DATE.match(text)
    if match:
        y, m, d = match.groups()
        text = f"{y}-{int(m):02d}-{int(d):02d}" + text[match.end() :]
    if not re.match(
        r"^\d{4}-\d{2}-\d{2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d{1,7})?)?)?(Z|[+-]\d{2}:?\d{2})?$", text, re.I
    ):
        raise BadInput(
            f"'datetime' value '{value}' is not a date and time "
            "(use yyyy-MM-ddTHH:mm:ss.fffffffZ, yyyy-MM-dd HH:mm:ss.SSS or yyyy.MM.dd HH:mm:ss)."
        )
    # Python reads at most 6 fractional digits; .NET writes 7.
    text = re.sub(r"(\.\d{6})\d", r"\1", text)
    text = re.sub(r"([ T])(\d):", r"\g<1>0\2:", text)
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 shifted before year 1
        raise BadInput(f"'datetime' value '{value}' is not a valid date and time.") from exc
