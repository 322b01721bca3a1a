"""HTTP details of the FHIR REST API: content negotiation, Prefer, headers, bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from typing import Any

import orjson
from flask import Request, Response

from fhir_ai.errors import InvalidRequest, NotAcceptable, UnsupportedMediaType
from fhir_ai.store.repository import StoredResource

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
_FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": "application/json", FHIR_JSON: FHIR_JSON}
_XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml", "ttl"})


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the client asked for in its ``Prefer`` header."""

    return_mode: str = "representation"
    strict: bool = False


def response_media_type(request: Request) -> str:
    """The media type to answer with, from ``_format`` or ``Accept``; else 406."""
    requested = request.args.get("_format")
    if requested:
        requested = requested.strip().replace(" ", "+")
        if requested in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[requested]
        if requested in _XML_FORMATS or requested.split(";")[0] in _XML_FORMATS:
            raise NotAcceptable(f"_format={requested} is not supported; this server speaks JSON")
        raise NotAcceptable(f"Unknown _format {requested!r}")
    if not request.accept_mimetypes or request.accept_mimetypes.provided is False:
        return FHIR_JSON
    best = request.accept_mimetypes.best_match([FHIR_JSON, "application/json"])
    if best is None:
        raise NotAcceptable(
            f"None of the accepted types ({request.headers.get('Accept')}) can be served; "
            "use application/fhir+json"
        )
    return best


def parse_json_body(request: Request) -> Any:
    """The request body as JSON, after checking its content type."""
    media_type = (request.mimetype or "").lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {request.content_type or '(none)'} is not supported; "
            "send application/fhir+json"
        )
    data = request.get_data(cache=True)
    if not data:
        raise InvalidRequest("The request body is empty")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"The body is not valid JSON: {error}") from None


def preferences(request: Request) -> Preferences:
    """Parse ``Prefer: return=...`` and ``Prefer: handling=...``."""
    values: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for token in header.split(","):
            for part in token.split(";"):
                key, _, value = part.strip().partition("=")
                values[key.strip().lower()] = value.strip().strip('"')
    return_mode = values.get("return", "representation")
    if return_mode not in ("minimal", "representation", "OperationOutcome"):
        return_mode = "representation"
    return Preferences(return_mode, values.get("handling") == "strict")


def if_match_version(request: Request) -> int | None:
    """The version number named by ``If-Match: W/"n"``, if any."""
    header = request.headers.get("If-Match")
    if not header:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidRequest(f'If-Match must be W/"<version>", not {header!r}')
    return int(value)


def json_response(body: Any, status: int, media_type: str, pretty: bool = False) -> Response:
    """A JSON response."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return Response(orjson.dumps(body, option=option), status=status, mimetype=media_type)


def version_headers(stored: StoredResource) -> dict[str, str]:
    """ETag and Last-Modified of a stored version."""
    return {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated.replace(tzinfo=UTC), usegmt=True),
    }


def location(base_url: str, stored: StoredResource) -> str:
    """The versioned URL of a stored version."""
    return f"{base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
