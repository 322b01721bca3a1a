"""Which Subscriptions a resource matches: their criteria, evaluated by the FHIR search
machinery as ``<type>?_id=<id>&<criteria parameters>``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from fhir_ai.errors import FhirAiError, InvalidResource
from fhir_ai.fhir.service import FhirService
from fhir_ai.store.repository import StoreSession

logger = logging.getLogger("fhir_ai.subscriptions")

#: Subscriptions in these states are notified (``error`` ones too: a delivery that
#: succeeds again puts them back to ``active``).
NOTIFIED_STATES: Final = ("active", "error")
SUPPORTED_TYPES: Final = ("Task", "DiagnosticReport")
REST_HOOK: Final = "rest-hook"
FHIR_JSON: Final = "application/fhir+json"
_LOCAL_BASE: Final = "http://localhost/fhir"
_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Channel:
    """Where and how a Subscription is notified."""

    endpoint: str
    headers: tuple[tuple[str, str], ...]
    payload: bool  # True: the resource as application/fhir+json; False: an empty body


def channel(subscription: dict[str, Any]) -> Channel:
    """The rest-hook channel of ``subscription``; :class:`InvalidResource` if unusable."""
    raw = subscription.get("channel") or {}
    if raw.get("type") != REST_HOOK:
        raise InvalidResource("Only rest-hook Subscription channels are supported")
    endpoint = raw.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidResource("Subscription.channel.endpoint must be an http(s) URL")
    payload = raw.get("payload")
    if payload not in (None, "", FHIR_JSON, "application/json"):
        raise InvalidResource(f"Subscription.channel.payload must be {FHIR_JSON} or absent")
    headers = []
    for header in raw.get("header") or []:
        name, sep, value = str(header).partition(":")
        if not sep or not name.strip() or "\n" in header or "\r" in header:
            raise InvalidResource("Subscription.channel.header entries must be 'Name: value'")
        headers.append((name.strip(), value.strip()))
    return Channel(str(endpoint), tuple(headers), payload=bool(payload))


def criteria_parts(subscription: dict[str, Any]) -> tuple[str, str]:
    """(resource type, search parameters) of the criteria; :class:`InvalidResource` if bad."""
    criteria = str(subscription.get("criteria") or "")
    kind, _, params = criteria.partition("?")
    if kind not in SUPPORTED_TYPES:
        supported = ", ".join(SUPPORTED_TYPES)
        raise InvalidResource(f"Subscription.criteria must search one of: {supported}")
    return kind, params


def check(fhir: FhirService, subscription: dict[str, Any]) -> None:
    """Raise :class:`InvalidResource` unless the channel and the criteria are usable."""
    channel(subscription)
    kind, params = criteria_parts(subscription)
    try:
        fhir.parse_search(kind, parse_qsl(params, keep_blank_values=True), strict=True)
    except FhirAiError as error:
        raise InvalidResource(f"Subscription.criteria: {error.message}") from error


def matching_subscriptions(session: StoreSession, fhir: FhirService, reference: str) -> list[str]:
    """Ids of the notified Subscriptions whose criteria match ``reference`` (``Type/id``)."""
    kind, _, resource_id = reference.partition("/")
    params = [("status", ",".join(NOTIFIED_STATES)), ("type", REST_HOOK), ("_count", str(_PAGE))]
    query = fhir.parse_search("Subscription", params, strict=True)
    matched = []
    for found in session.search(query, "").matches:
        subscription = found.content or {}
        try:
            criteria_kind, criteria = criteria_parts(subscription)
        except InvalidResource:
            continue
        if criteria_kind != kind:
            continue
        search = f"_id={resource_id}&{criteria}" if criteria else f"_id={resource_id}"
        try:
            if fhir.matching_ids(session, kind, search, _LOCAL_BASE):
                matched.append(found.id)
        except FhirAiError:
            logger.warning("Subscription criteria not usable", extra={"subscription": found.id})
    return matched
