"""note-findings: affirmed problems from notes, missing from the problem list, as suggestions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_ai.fhir.ai_results import AI_ASSERTED
from fhir_ai.fhir.nlp_results import ASSERTION, NLP_FINDING
from tests.conftest import build_app, make_settings
from tests.fhir_helpers import post

pytestmark = pytest.mark.integration
SNOMED = "http://snomed.info/sct"
DIABETES = {"system": SNOMED, "code": "44054006", "display": "Diabetes mellitus type 2"}
ASTHMA = {"system": SNOMED, "code": "195967001", "display": "Asthma"}
CANCER = {"system": SNOMED, "code": "363346000", "display": "Malignant neoplastic disease"}
HF = {"system": SNOMED, "code": "84114007", "display": "Heart failure"}
COPD = {"system": SNOMED, "code": "13645005", "display": "COPD"}


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    app: Flask = build_app(make_settings(tmp_path, cds_auth="off"))
    return app.test_client()


def _mention(
    patient: str,
    coding: dict[str, str],
    assertion: str = "present",
    sentence: str = "",
    day: str = "2026-11-20",
    **flags: bool,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "meta": {"security": [{"system": AI_ASSERTED[0], "code": AI_ASSERTED[1]}]},
        "status": "preliminary",
        "category": [{"coding": [{"system": NLP_FINDING[0], "code": NLP_FINDING[1]}]}],
        "code": {"coding": [coding], "text": coding["display"]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"{day}T09:00:00Z",
        "valueCodeableConcept": {"coding": [{"system": ASSERTION, "code": assertion}]},
        "component": [
            {"code": {"coding": [{"system": ASSERTION, "code": name}]}, "valueBoolean": value}
            for name, value in flags.items()
        ],
        "note": [{"text": sentence or f"Patient has {coding['display']}."}],
        "derivedFrom": [{"reference": "DocumentReference/note-1"}],
    }


def _call(client: FlaskClient, patient: str, conditions: Any) -> Any:
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient},
        "prefetch": {"conditions": conditions},
    }
    return client.post("/cds-services/note-findings", json=body)


def test_only_affirmed_missing_problems_are_suggested(client: FlaskClient) -> None:
    patient = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json["id"]
    today = datetime_today()
    mentions = [
        _mention(
            patient, DIABETES, sentence="Type 2 diabetes <b>poorly</b> controlled.", day=today
        ),
        _mention(patient, ASTHMA, day=today),  # already on the problem list
        _mention(
            patient, CANCER, assertion="absent", sentence="No evidence of malignancy.", day=today
        ),
        _mention(patient, HF, family=True, sentence="Mother had heart failure.", day=today),
        _mention(patient, COPD, hypothetical=True, sentence="Return if COPD symptoms.", day=today),
    ]
    for mention in mentions:
        assert post(client, "/fhir/Observation", mention).status_code == 201
    conditions = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Condition", "code": {"coding": [ASTHMA]}}}],
    }
    response = _call(client, patient, conditions)
    assert response.status_code == 200, response.json
    (card,) = response.json["cards"]
    assert card["summary"] == (
        "Notes mention 1 problem not on the problem list: Diabetes mellitus type 2"
    )
    assert "\\<b\\>poorly\\</b\\>" in card["detail"]
    (suggestion,) = card["suggestions"]
    condition = suggestion["actions"][0]["resource"]
    assert condition["code"]["coding"][0]["code"] == "44054006"
    assert condition["verificationStatus"]["coding"][0]["code"] == "unconfirmed"
    assert condition["evidence"][0]["detail"][0]["reference"] == "DocumentReference/note-1"

    with_diabetes = {
        **conditions,
        "entry": [
            *conditions["entry"],
            {"resource": {"resourceType": "Condition", "code": {"coding": [DIABETES]}}},
        ],
    }
    assert _call(client, patient, with_diabetes).json == {"cards": []}


def test_problem_list_is_required(client: FlaskClient) -> None:
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
    }
    assert client.post("/cds-services/note-findings", json=body).status_code == 412


def datetime_today() -> str:
    return datetime.now(UTC).date().isoformat()
