"""Audit trail: every FHIR access and CDS Hooks call is recorded as a FHIR AuditEvent.

Events are handed to the per-process :class:`~fhir_ai.store.background.BackgroundWriter`,
which writes them in batches off the request thread, in transactions that do not wait for
PostgreSQL's WAL flush: auditing never changes what the client sees or waits for (a crash
may lose the events of the last fraction of a second); a failure to write is logged
(without PHI), never raised. AuditEvents are stored like any other
resource and are readable (``/fhir/AuditEvent?patient=...``) by authorised clients.

The requesting agent is the client (``who.display``: issuer and client id) and, when the
SMART access token carries a ``fhirUser`` claim, the user it acted for (``who.reference``,
``Practitioner/123`` say): with ``user/`` scopes the authorization server decided what
that user may do, and this is where the server keeps who it was.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

from fhir_ai.store.background import BackgroundWriter
from fhir_ai.store.repository import StoreSession

logger = logging.getLogger("fhir_ai.audit")
_EVENT_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
_INTERACTIONS = "http://hl7.org/fhir/restful-interaction"
_FHIR_AI_SUBTYPES = "https://fhir-ai.org/fhir/CodeSystem/audit-subtype"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
CDS_CARD_IDS = "https://fhir-ai.org/fhir/NamingSystem/cds-card"
_AUDITED = ("/fhir", "/cds-services", "/reports")
_UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})
_ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}


@dataclass(slots=True)
class AuditContext:
    """What a view knows that the audit record needs; kept in ``flask.g.audit``."""

    subtype: str | None = None
    entities: list[str] = field(default_factory=list)
    action: str | None = None
    cards: list[str] = field(default_factory=list)  # uuids of the CDS cards returned


def audit_context() -> AuditContext:
    """The current request's audit context (created on first use)."""
    if "audit" not in g:
        g.audit = AuditContext()
    context: AuditContext = g.audit
    return context


def write_audit_events(session: StoreSession, events: list[dict[str, Any]]) -> None:
    """The background writer's sink for AuditEvents: stored like any resource."""
    session.create_many(events)


def register_audit(app: Flask, writer: BackgroundWriter) -> None:
    """Record an AuditEvent for each request under ``/fhir``, ``/cds-services`` and
    ``/reports`` (the report view of CDS card links)."""

    @app.after_request
    def audit(response: Response) -> Response:
        if request.method == "OPTIONS" or not request.path.startswith(_AUDITED):
            return response
        if request.path.rstrip("/") in _UNAUDITED:
            return response
        event = _event(response.status_code, response.headers.get("Location"))
        writer.submit(write_audit_events, event)
        return response


def _event(status: int, location: str | None) -> dict[str, Any]:
    context = audit_context()
    subtype = context.subtype or _interaction()
    entities: list[dict[str, Any]] = [
        {"what": {"reference": ref}, "type": {"system": _ENTITY_TYPE, "code": "2"}}
        for ref in dict.fromkeys(context.entities or _path_entity(location))
    ]
    entities += [
        {
            "what": {"identifier": {"system": CDS_CARD_IDS, "value": card}},
            "type": {"system": _ENTITY_TYPE, "code": "2"},
            "description": "CDS Hooks card returned",
        }
        for card in context.cards
    ]
    if request.query_string:
        entities.append(
            {"type": {"system": _ENTITY_TYPE, "code": "2"}, "query": _b64(request.query_string)}
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _EVENT_TYPE,
        "subtype": [
            {
                "system": _FHIR_AI_SUBTYPES if subtype.startswith("cds-") else _INTERACTIONS,
                "code": subtype,
            }
        ],
        "action": context.action or _ACTIONS.get(request.method, "E"),
        "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "outcome": "0" if status < 400 else "4" if status < 500 else "8",
        "outcomeDesc": f"HTTP {status}",
        "agent": [_agent()],
        "source": {
            "observer": {"display": "fhir-ai"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                }
            ],
        },
    }
    if entities:
        event["entity"] = entities
    return event


def _agent() -> dict[str, Any]:
    client = g.get("audit_client")
    who: dict[str, str] = {"display": client} if client else {"display": "unauthenticated client"}
    user = g.get("audit_user")
    if user:
        who = {"reference": user, **who}
    agent: dict[str, Any] = {"who": who, "requestor": True}
    if request.remote_addr:
        agent["network"] = {"address": request.remote_addr, "type": "2"}
    return agent


def _interaction() -> str:
    parts = [p for p in request.path.split("/") if p][1:]
    method = request.method
    if request.path.startswith("/cds-services"):
        if not parts:
            return "cds-discovery"
        return "cds-feedback" if parts[-1] == "feedback" else "cds-hook-call"
    if not parts:
        return "transaction" if method == "POST" else "capabilities"
    if parts[-1] == "_search":
        return "search-type"
    if "_history" in parts:
        return "history-instance" if parts[-1] == "_history" else "vread"
    if len(parts) == 1:
        return {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "search-type")
    return {"GET": "read", "PUT": "update", "DELETE": "delete"}.get(method, "operation")


def _path_entity(location: str | None) -> list[str]:
    path = location.split("/fhir/", 1)[-1] if location else request.path
    parts = (
        ["fhir", *[p for p in path.split("/") if p]]
        if location
        else [p for p in path.split("/") if p]
    )
    if parts[:1] == ["fhir"] and len(parts) >= 3 and parts[2] != "_search":
        return [f"{parts[1]}/{parts[2]}"]
    return []


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
