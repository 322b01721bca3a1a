"""The extraction Bundle through the real store: re-running writes nothing new; CDS reads it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from fhir_ai.nlp.extract import extract_for_resource
from fhir_ai.settings import Settings
from tests.fhir_helpers import post

pytestmark = pytest.mark.integration


def test_rerun_creates_no_duplicates(sqlite_app: Flask) -> None:
    client = sqlite_app.test_client()
    patient = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json["id"]
    text = b"Assessment: type 2 diabetes. No pneumonia. Mother had asthma."
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient}"},
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "content": [{"attachment": {"contentType": "text/plain",
                                    "data": base64.b64encode(text).decode()}}],
    }  # fmt: skip
    stored = post(client, "/fhir/DocumentReference", document).json
    bundle = extract_for_resource(stored, lambda url: None, Settings())
    first = post(client, "/fhir", bundle)
    assert first.status_code == 200, first.json
    assert {e["response"]["status"] for e in first.json["entry"]} == {"201 Created"}
    second = post(client, "/fhir", extract_for_resource(stored, lambda url: None, Settings()))
    assert {e["response"]["status"] for e in second.json["entry"]} == {"200 OK"}
    observations = client.get(f"/fhir/Observation?patient=Patient/{patient}").json
    assert observations["total"] == 3
    reports = client.get(f"/fhir/DiagnosticReport?patient=Patient/{patient}").json
    assert reports["total"] == 1
    assert client.get("/fhir/Provenance").json["total"] == 1


def _unused(_: Any) -> None: ...
