"""Prefetch: render a service's templates, use what the client sent, fetch what is missing.

CDS Hooks 2.0.1 §Prefetch: a key the client sent with ``null`` is known-empty; a key
whose value is an OperationOutcome (or a searchset holding one that reports a problem: the
data may be partial), or a key the client left out, is fetched from ``fhirServer`` with
``Authorization: Bearer <fhirAuthorization.access_token>``, never without it (rule 61)
and never after the token's ``expires_in``. An ``http://`` fhirServer is refused with a
token unless ``FHIR_AI_CDS_ALLOW_HTTP_FHIR_SERVER`` is set (local development). Paging
follows ``next`` links on the same server only; references to other servers are never
followed. Required data that cannot be had raises :class:`PrefetchUnavailable` (412).
The access token is never logged or stored.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from fhir_ai.cds.requests import FhirAuthorization
from fhir_ai.errors import InvalidRequest, PrefetchUnavailable
from fhir_ai.fhir.outcome import reports_failure

logger = logging.getLogger("fhir_ai.cds.prefetch")
_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
MAX_PAGES = 10


class FetchFailed(Exception):
    """A FHIR server could not answer a prefetch query."""


@dataclass(frozen=True, slots=True)
class FhirAccess:
    """The client's FHIR server and the access token to read it with, until ``expires_at``
    (``time.monotonic()``)."""

    server: str
    token: str = field(repr=False)
    expires_at: float

    def check_token(self) -> None:
        """Raise :class:`FetchFailed` once the token's ``expires_in`` has passed."""
        if time.monotonic() >= self.expires_at:
            raise FetchFailed("the fhirAuthorization token has expired")


def fhir_access(
    server: str | None, authorization: FhirAuthorization | None, *, allow_http: bool
) -> FhirAccess | None:
    """What the request allows reading: nothing without ``fhirAuthorization``; a plain
    ``http`` server with a token is a bad request unless ``allow_http``."""
    if server is None or authorization is None:
        return None
    if urlsplit(server).scheme != "https" and not allow_http:
        raise InvalidRequest(
            "fhirServer must be an https URL when fhirAuthorization is sent",
            expression="fhirServer",
        )
    expires_at = time.monotonic() + authorization.expires_in
    return FhirAccess(server.rstrip("/"), authorization.bearer_token(), expires_at)


class FhirReader(Protocol):
    """Port: read a FHIR URL (one page) from a FHIR server."""

    def get(self, url: str, access_token: str | None) -> dict[str, Any] | None:
        """The JSON resource at ``url``; None for 404/410; raise FetchFailed otherwise."""
        ...


class HttpFhirReader:
    """:class:`FhirReader` over HTTP with a timeout."""

    def __init__(self, timeout_s: float = 5.0, session: requests.Session | None = None) -> None:
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def get(self, url: str, access_token: str | None) -> dict[str, Any] | None:
        """GET ``url`` as FHIR JSON."""
        headers = {"Accept": "application/fhir+json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        try:
            response = self.session.get(url, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise FetchFailed(type(error).__name__) from None
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise FetchFailed(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise FetchFailed("not JSON") from None
        if not isinstance(body, dict):
            raise FetchFailed("not a FHIR resource")
        return body


def render_template(
    template: str, context: Mapping[str, Any], token_fields: frozenset[str]
) -> str | None:
    """Replace the 2.0.1 tokens in ``template``; None if a token has no value."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        result: object = None
        if name.startswith("context."):
            field = name.removeprefix("context.")
            result = context.get(field) if field in token_fields else None
        elif name in _USER_TOKENS:
            result = _user_token(context.get("userId"), _USER_TOKENS[name])
        if not isinstance(result, str | int) or result == "":
            missing = True
            return ""
        return str(result)

    rendered = _TOKEN.sub(value, template)
    return None if missing else rendered


def resolve_prefetch(
    templates: Mapping[str, str],
    required: frozenset[str],
    context: Mapping[str, Any],
    token_fields: frozenset[str],
    sent: Mapping[str, Any] | None,
    access: FhirAccess | None,
    reader: FhirReader,
) -> dict[str, Any]:
    """Every prefetch key of the service: sent, fetched, or (if optional) left out."""
    resolved: dict[str, Any] = {}
    sent = sent or {}
    for key, template in templates.items():
        if key in sent and not reports_failure(sent[key]):
            resolved[key] = sent[key]
            continue
        try:
            resolved[key] = _fetch(key, template, context, token_fields, access, reader)
        except PrefetchUnavailable:
            if key in required:
                raise
            logger.info("optional prefetch unavailable", extra={"prefetch_key": key})
    return resolved


def _fetch(
    key: str,
    template: str,
    context: Mapping[str, Any],
    token_fields: frozenset[str],
    access: FhirAccess | None,
    reader: FhirReader,
) -> dict[str, Any] | None:
    if access is None:
        raise PrefetchUnavailable(
            f"Prefetch '{key}' was not sent (or reported a problem) and the request has no "
            "fhirServer and fhirAuthorization to read it with"
        )
    relative = render_template(template, context, token_fields)
    if relative is None:
        raise PrefetchUnavailable(f"Prefetch '{key}' needs context the request does not have")
    try:
        access.check_token()
        first = reader.get(f"{access.server}/{relative.lstrip('/')}", access.token)
        if first is not None and first.get("resourceType") == "Bundle":
            first = _all_pages(first, access, reader)
        if reports_failure(first):
            raise FetchFailed("the FHIR server reported a problem")
        return first
    except FetchFailed as error:
        logger.warning("prefetch fetch failed", extra={"prefetch_key": key, "reason": str(error)})
        raise PrefetchUnavailable(
            f"Prefetch '{key}' could not be fetched from fhirServer"
        ) from None


def _all_pages(bundle: dict[str, Any], access: FhirAccess, reader: FhirReader) -> dict[str, Any]:
    entries = list(bundle.get("entry", []))
    page = bundle
    for _ in range(MAX_PAGES - 1):
        next_url = next((link.get("url") for link in page.get("link", [])
                         if link.get("relation") == "next"), None)  # fmt: skip
        if not isinstance(next_url, str) or not next_url.startswith(access.server + "/"):
            break  # never follow a link (and send the token) to another server
        access.check_token()
        fetched = reader.get(next_url, access.token)
        if fetched is None:
            break
        page = fetched
        entries += page.get("entry", [])
    merged = {k: v for k, v in bundle.items() if k not in ("entry", "link")}
    merged["entry"] = entries
    return merged


def _user_token(user_id: object, resource_type: str) -> str | None:
    if isinstance(user_id, str) and user_id.startswith(f"{resource_type}/"):
        return user_id.split("/", 1)[1]
    return None
