"""Delivering one rest-hook notification and recording how it went.

The outcome is kept on the Subscription (``status`` error with ``error`` text after a
failed attempt, back to ``active`` after a successful one) and in a small delivery log:
one AuditEvent per attempt (entities: the Subscription and the notified resource; no
endpoint, no header: they may hold credentials).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

import requests

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.store.repository import StoreSession
from fhir_ai.subscriptions.matching import FHIR_JSON, Channel

DELIVERY_SUBTYPES: Final = "https://fhir-ai.org/fhir/CodeSystem/audit-subtype"
_EXPORT: Final = {
    "system": "http://dicom.nema.org/resources/ontology/DCM",
    "code": "110106",
    "display": "Export",
}
_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"


class DeliveryFailed(ServiceUnavailable):
    """The endpoint could not be reached or did not answer 2xx (retried with backoff)."""


def post(
    channel: Channel, resource: dict[str, Any] | None, http: requests.Session, timeout_s: float
) -> int:
    """POST the notification; the HTTP status, or :class:`DeliveryFailed`."""
    headers = dict(channel.headers)
    body = b""
    if channel.payload and resource is not None:
        headers["Content-Type"] = FHIR_JSON
        body = json.dumps(resource, separators=(",", ":")).encode("utf-8")
    try:
        response = http.post(
            channel.endpoint, data=body, headers=headers, timeout=timeout_s, allow_redirects=False
        )
    except requests.RequestException as error:
        raise DeliveryFailed(f"endpoint not reachable ({type(error).__name__})") from error
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"endpoint answered HTTP {response.status_code}")
    return response.status_code


def record(
    session: StoreSession, subscription_id: str, reference: str, failure: str | None
) -> None:
    """Keep the outcome of one attempt on the Subscription and in the delivery log."""
    subscription = dict(session.read("Subscription", subscription_id).content or {})
    if failure is not None and (
        subscription.get("status") != "error" or subscription.get("error") != failure
    ):
        session.update({**subscription, "status": "error", "error": failure}, subscription_id)
    elif failure is None and subscription.get("status") == "error":
        active = {k: v for k, v in subscription.items() if k != "error"}
        session.update({**active, "status": "active"}, subscription_id)
    session.create(delivery_event(subscription_id, reference, failure))


def delivery_event(subscription_id: str, reference: str, failure: str | None) -> dict[str, Any]:
    """The AuditEvent of one delivery attempt."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "resourceType": "AuditEvent",
        "type": _EXPORT,
        "subtype": [{"system": DELIVERY_SUBTYPES, "code": "subscription-notification"}],
        "action": "E",
        "recorded": now,
        "outcome": "0" if failure is None else "4",
        "outcomeDesc": failure or "delivered",
        "agent": [{"who": {"display": "fhir-ai"}, "requestor": True}],
        "source": {"observer": {"display": "fhir-ai"}},
        "entity": [
            {"what": {"reference": f"Subscription/{subscription_id}"},
             "type": {"system": _ENTITY_TYPE, "code": "2"}},
            {"what": {"reference": reference}, "type": {"system": _ENTITY_TYPE, "code": "2"}},
        ],
    }  # fmt: skip
