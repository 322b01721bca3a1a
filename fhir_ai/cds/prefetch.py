"""Prefetch: render a service's templates, use what the client sent, fetch what is missing.

CDS Hooks 2.0.1 §Prefetch: a key the client sent with ``null`` is known-empty; a key
whose value is an OperationOutcome, or a key the client left out, is fetched from
``fhirServer`` with ``Authorization: Bearer <fhirAuthorization.access_token>``. Paging
follows ``next`` links on the same server only; references to other servers are never
followed. Required data that cannot be had raises :class:`PrefetchUnavailable` (412).
The access token is never logged or stored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from fhir_ai.errors import PrefetchUnavailable
from fhir_ai.fhir.outcome import is_operation_outcome

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
    fhir_server: str | None,
    access_token: str | None,
    reader: FhirReader,
) -> dict[str, Any]:
    """Every prefetch key of the service: sent, fetched, or (if optional) left out."""
    resolved: dict[str, Any] = {}
    sent = sent or {}
    for key, template in templates.items():
        if key in sent and not is_operation_outcome(sent[key]):
            resolved[key] = sent[key]
            continue
        try:
            resolved[key] = _fetch(key, template, context, token_fields, fhir_server,
                                   access_token, reader)  # fmt: skip
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
    fhir_server: str | None,
    access_token: str | None,
    reader: FhirReader,
) -> dict[str, Any] | None:
    if not fhir_server:
        raise PrefetchUnavailable(f"Prefetch '{key}' was not sent and no fhirServer was given")
    relative = render_template(template, context, token_fields)
    if relative is None:
        raise PrefetchUnavailable(f"Prefetch '{key}' needs context the request does not have")
    base = fhir_server.rstrip("/")
    try:
        first = reader.get(f"{base}/{relative.lstrip('/')}", access_token)
        if first is None or first.get("resourceType") != "Bundle":
            return first
        return _all_pages(first, base, access_token, reader)
    except FetchFailed as error:
        logger.warning("prefetch fetch failed", extra={"prefetch_key": key, "reason": str(error)})
        raise PrefetchUnavailable(
            f"Prefetch '{key}' could not be fetched from fhirServer"
        ) from None


def _all_pages(
    bundle: dict[str, Any], base: str, access_token: str | None, reader: FhirReader
) -> dict[str, Any]:
    entries = list(bundle.get("entry", []))
    page = bundle
    for _ in range(MAX_PAGES - 1):
        next_url = next((link.get("url") for link in page.get("link", [])
                         if link.get("relation") == "next"), None)  # fmt: skip
        if not isinstance(next_url, str) or not next_url.startswith(base + "/"):
            break  # never follow a link (and send the token) to another server
        fetched = reader.get(next_url, access_token)
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
