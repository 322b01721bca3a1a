"""imaging-ai-findings and imaging-order-advisor over AI results stored in this server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_ai.fhir.ai_results import IMAGING_ANALYSIS
from fhir_ai.fhir.resources import validate_resource
from tests.conftest import build_app, make_settings
from tests.fhir_helpers import PNEUMONIA, XR_CHEST, ai_report_bundle, post

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return build_app(make_settings(tmp_path, cds_auth="off", public_base_url="https://ai.example"))


def _patient(client: FlaskClient) -> str:
    response = post(client, "/fhir/Patient", {"resourceType": "Patient"})
    return str(response.json["id"])


def _seed(client: FlaskClient, patient: str, probability: float, days_ago: int = 1) -> None:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    assert post(client, "/fhir", ai_report_bundle(patient, probability, when)).status_code == 200


def _call(
    client: FlaskClient,
    service: str,
    hook: str,
    context: dict[str, Any],
    prefetch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def _conditions(*codes: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Condition", "code": {"coding": [code]}}}
            for code in codes
        ],
    }


def test_discovery_lists_the_imaging_services(app: Flask) -> None:
    services = app.test_client().get("/cds-services").json["services"]
    assert ("imaging-ai-findings", "patient-view") in {(s["id"], s["hook"]) for s in services}
    assert ("imaging-order-advisor", "order-sign") in {(s["id"], s["hook"]) for s in services}


def test_positive_finding_card_with_provisional_condition(app: Flask) -> None:
    client = app.test_client()
    patient = _patient(client)
    _seed(client, patient, 0.87)
    _seed(client, patient, 0.91, days_ago=400)  # outside the window
    context = {"userId": "Practitioner/1", "patientId": patient}
    cards = _call(
        client, "imaging-ai-findings", "patient-view", context, {"conditions": _conditions()}
    )["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "warning"
    assert "Pneumonia likely (87%)" in card["summary"] and len(card["summary"]) < 140
    assert "pneumonia-cxr 1.0.0" in card["detail"] and "28x28" in card["detail"]
    assert card["links"][0]["url"].startswith("https://ai.example/reports/")  # signed view
    assert card["selectionBehavior"] == "any"
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create"
    condition = action["resource"]
    assert condition["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert condition["code"]["coding"][0]["code"] == "233604007"

    known = _call(
        client,
        "imaging-ai-findings",
        "patient-view",
        context,
        {"conditions": _conditions(PNEUMONIA)},
    )["cards"]
    assert "suggestions" not in known[0]


def test_negative_and_pending_and_nothing(app: Flask) -> None:
    client = app.test_client()
    patient = _patient(client)
    context = {"userId": "Practitioner/1", "patientId": patient}
    assert _call(client, "imaging-ai-findings", "patient-view", context, {"conditions": None}) == {
        "cards": []
    }
    _seed(client, patient, 0.04)
    task = {
        "resourceType": "Task",
        "status": "in-progress",
        "intent": "order",
        "code": {"coding": [{"system": IMAGING_ANALYSIS[0], "code": IMAGING_ANALYSIS[1]}]},
        "for": {"reference": f"Patient/{patient}"},
    }
    assert post(client, "/fhir/Task", task).status_code == 201
    cards = _call(client, "imaging-ai-findings", "patient-view", context, {"conditions": None})[
        "cards"
    ]
    assert [c["indicator"] for c in cards] == ["info", "info"]
    assert "no positive finding" in cards[0]["summary"]
    assert "still running" in cards[1]["summary"]


def test_order_advisor_flags_duplicate_imaging(app: Flask) -> None:
    client = app.test_client()
    patient = _patient(client)
    _seed(client, patient, 0.87, days_ago=3)
    order = {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [XR_CHEST], "text": "Chest X-ray"},
        "subject": {"reference": f"Patient/{patient}"},
    }
    other = {
        **order,
        "id": "sr2",
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2"}]},
    }
    draft = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": order}, {"resource": other}],
    }
    context = {"userId": "Practitioner/1", "patientId": patient, "draftOrders": draft}
    response = _call(client, "imaging-order-advisor", "order-sign", context)
    cards = response["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] == "info"
    assert "already has an AI result" in cards[0]["summary"]
    select = {**context, "selections": ["ServiceRequest/sr2"]}
    assert _call(client, "imaging-order-advisor", "order-select", select) == {"cards": []}

    # The system action: the whole draft order, with the prior AI report attached.
    [action] = response["systemActions"]
    assert action["type"] == "update" and action["description"]
    updated = action["resource"]
    assert {k: v for k, v in updated.items() if k != "supportingInfo"} == order
    [attached] = updated["supportingInfo"]
    report_id = attached["reference"].rsplit("/", 1)[1]
    assert attached["reference"] == f"https://ai.example/fhir/DiagnosticReport/{report_id}"
    assert cards[0]["links"][0]["url"].startswith(f"https://ai.example/reports/{report_id}?")
    validate_resource(updated)  # a valid R4 ServiceRequest
    again = {**context, "draftOrders": {**draft, "entry": [{"resource": updated}]}}
    repeated = _call(client, "imaging-order-advisor", "order-sign", again)
    assert len(repeated["cards"]) == 1 and "systemActions" not in repeated
