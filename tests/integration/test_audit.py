"""Every FHIR access and CDS hook call leaves an AuditEvent; metadata and failures too."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from fhir_ai.audit import CDS_CARD_IDS
from fhir_ai.fhir.resources import validate_resource
from tests.conftest import build_app, make_settings
from tests.fhir_helpers import ai_report_bundle, post

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return build_app(make_settings(tmp_path, cds_auth="off"))


def _events(app: Flask, query: str = "") -> list[dict[str, object]]:
    app.extensions["fhir_ai.writer"].flush()
    response = app.test_client().get(f"/fhir/AuditEvent?_count=100&{query}")
    return [e["resource"] for e in response.json.get("entry", []) if e["search"]["mode"] == "match"]


def test_fhir_interactions_are_audited(app: Flask) -> None:
    client = app.test_client()
    patient = (post(client, "/fhir/Patient", {"resourceType": "Patient"})).json["id"]
    (client.get(f"/fhir/Patient/{patient}"))
    (client.get("/fhir/Patient?family=Secret"))
    (client.get("/fhir/Patient/unknown-id"))
    (client.get("/fhir/metadata"))
    events = _events(app, f"entity=Patient/{patient}")
    assert sorted(e["subtype"][0]["code"] for e in events) == ["create", "read"]  # type: ignore[index]
    all_events = _events(app)
    codes = [e["subtype"][0]["code"] for e in all_events]  # type: ignore[index]
    assert "capabilities" not in codes and "search-type" in codes
    failed = [e for e in all_events if e["outcome"] == "4"]
    assert len(failed) == 1 and failed[0]["outcomeDesc"] == "HTTP 404"
    search = next(e for e in all_events if e["subtype"][0]["code"] == "search-type")  # type: ignore[index]
    query = search["entity"][-1]["query"]  # type: ignore[index]
    assert base64.b64decode(query) == b"family=Secret"


def test_hook_calls_are_audited_with_the_patient_and_the_cards(app: Flask) -> None:
    client = app.test_client()
    when = datetime.now(UTC) - timedelta(days=1)
    for probability in (0.9, 0.1):
        stored = post(client, "/fhir", ai_report_bundle("p-audit", probability, when))
        assert stored.status_code == 200
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p-audit"},
        "prefetch": {"conditions": None},
    }
    response = client.post("/cds-services/imaging-ai-findings", json=body)
    assert response.status_code == 200
    cards = [card["uuid"] for card in response.json["cards"]]
    assert len(cards) == 2
    (event,) = _events(app, "patient=Patient/p-audit&subtype=cds-hook-call")
    assert event["subtype"][0]["code"] == "cds-hook-call"  # type: ignore[index]
    assert event["action"] == "C" and event["outcome"] == "0"
    entities = event["entity"]
    assert entities[0]["what"] == {"reference": "Patient/p-audit"}  # type: ignore[index]
    listed = [e["what"]["identifier"]["value"] for e in entities[1:]]  # type: ignore[index]
    assert listed == cards
    assert {e["what"]["identifier"]["system"] for e in entities[1:]} == {CDS_CARD_IDS}  # type: ignore[index]
    validate_resource(event)  # a valid R4 AuditEvent


def test_audit_can_be_switched_off(tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path, audit=False))
    (app.test_client().get("/fhir/Patient"))
    assert _events(app) == []
