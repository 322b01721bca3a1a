"""Small helpers for driving the FHIR API in tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhir_ai.fhir.ai_results import AI_ASSERTED, INTERPRETATION

FHIR_JSON = "application/fhir+json"
SNOMED = "http://snomed.info/sct"
XR_CHEST = {"system": "http://loinc.org", "code": "36643-5", "display": "XR Chest 2 Views"}
PNEUMONIA = {"system": SNOMED, "code": "233604007", "display": "Pneumonia"}


def post(client: FlaskClient, path: str, body: Any, **headers: str) -> TestResponse:
    """POST a JSON body as FHIR JSON."""
    return client.post(path, data=orjson.dumps(body), content_type=FHIR_JSON, headers=headers)


def put(client: FlaskClient, path: str, body: Any, **headers: str) -> TestResponse:
    """PUT a JSON body as FHIR JSON."""
    return client.put(path, data=orjson.dumps(body), content_type=FHIR_JSON, headers=headers)


def create(client: FlaskClient, resource: dict[str, Any]) -> dict[str, Any]:
    """Create a resource and return what the server stored."""
    response = post(client, f"/fhir/{resource['resourceType']}", resource)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[return-value]


def new_patient(client: FlaskClient) -> str:
    """Create a patient with a unique name; return its id."""
    family = f"Test{uuid.uuid4().hex[:10]}"
    patient = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}]}
    return str(create(client, patient)["id"])


def ids(bundle: dict[str, Any], mode: str = "match") -> set[str]:
    """The ids of a searchset's entries of one mode."""
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    }


def assert_outcome(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """Check an error response: the status, an OperationOutcome body and (if given) the code
    of its first issue."""
    assert response.status_code == status, (response.status_code, response.data[:500])
    body = response.json
    assert body is not None and body["resourceType"] == "OperationOutcome", body
    assert body["issue"][0]["severity"] in ("error", "fatal")
    if code is not None:
        assert body["issue"][0]["code"] == code, body
    return body


def ai_report_bundle(patient: str, probability: float, when: datetime) -> dict[str, Any]:
    """A transaction Bundle as the imaging worker writes it (``fhir_ai/fhir/ai_results.py``):
    one AI chest X-ray DiagnosticReport with one pneumonia Observation, positive from 0.5."""
    observation_url = f"urn:uuid:{uuid.uuid4()}"
    observation = {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {"coding": [PNEUMONIA], "text": "Pneumonia"},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": probability, "unit": "1"},
        "interpretation": [
            {"coding": [{"system": INTERPRETATION, "code": "POS" if probability >= 0.5 else "NEG"}]}
        ],
        "device": {"display": "pneumonia-cxr 1.0.0"},
        "note": [{"text": "Trained on 28x28 pediatric chest X-rays."}],
    }
    report = {
        "resourceType": "DiagnosticReport",
        "meta": {"security": [{"system": AI_ASSERTED[0], "code": AI_ASSERTED[1]}]},
        "status": "preliminary",
        "code": {"coding": [XR_CHEST], "text": "Chest X-ray"},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "result": [{"reference": observation_url}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": observation_url,
                "resource": observation,
                "request": {"method": "POST", "url": "Observation"},
            },
            {"resource": report, "request": {"method": "POST", "url": "DiagnosticReport"}},
        ],
    }
