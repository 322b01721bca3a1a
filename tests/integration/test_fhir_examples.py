"""Official R4 examples and Synthea transaction Bundles against SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_ai.fhir.search.parameters import SearchRegistry
from tests.fhir_helpers import post, put

pytestmark = pytest.mark.integration
REGISTRY = SearchRegistry.load()


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def _registered_examples(shared: Path) -> list[dict[str, Any]]:
    examples = []
    for path in sorted((shared / "fhir/r4-official-examples").glob("*.json")):
        resource = json.loads(path.read_text())
        if REGISTRY.supports(resource["resourceType"]):
            examples.append(resource)
    return examples


def test_every_official_example_of_a_registered_type_round_trips(
    client: FlaskClient, shared_data: Path
) -> None:
    examples = _registered_examples(shared_data)
    assert len(examples) >= 40
    seen_types = set()
    for example in examples:
        resource_type = example["resourceType"]
        seen_types.add(resource_type)
        created = post(client, f"/fhir/{resource_type}", example)
        assert created.status_code == 201, (example.get("id"), created.json)
        new_id = created.json["id"]
        read = client.get(f"/fhir/{resource_type}/{new_id}")
        assert read.status_code == 200
        # The server owns a Subscription's status (requested -> active or error, with why)
        owned = (
            ("meta", "id", "status", "error") if resource_type == "Subscription" else ("meta", "id")
        )
        expected = {k: v for k, v in example.items() if k not in owned}
        assert {k: v for k, v in read.json.items() if k not in owned} == expected

        updated = put(client, f"/fhir/{resource_type}/{example['id']}", example)
        assert updated.status_code in (200, 201), updated.json
        stored = client.get(f"/fhir/{resource_type}/{example['id']}").json
        assert {k: v for k, v in stored.items() if k not in owned} == {
            k: v for k, v in example.items() if k not in owned
        }
    assert {"DiagnosticReport", "ImagingStudy", "Observation", "Patient"} <= seen_types


def test_synthea_bundles_post_as_transactions_and_are_searchable_by_patient(
    client: FlaskClient, shared_data: Path
) -> None:
    folder = shared_data / "fhir/synthea-r4-transaction-bundles"
    for path in sorted(folder.glob("*.json")):
        bundle = json.loads(path.read_text())
        response = post(client, "/fhir", bundle)
        assert response.status_code == 200, (path.name, response.json)
        result = response.json
        assert result["type"] == "transaction-response"
        assert len(result["entry"]) == len(bundle["entry"])
        assert all(e["response"]["status"] == "201 Created" for e in result["entry"])

        patients = [e for e in result["entry"] if e["response"]["location"].startswith("Patient/")]
        if not patients:
            continue
        patient_id = patients[0]["response"]["location"].split("/")[1]
        expected = Counter(
            e["resource"]["resourceType"]
            for e in bundle["entry"]
            if REGISTRY.get(e["resource"]["resourceType"], "patient")
        )
        for resource_type, count in expected.items():
            found = client.get(f"/fhir/{resource_type}?patient={patient_id}&_count=500")
            assert found.status_code == 200
            assert found.json["total"] == count, (path.name, resource_type)
            for entry in found.json["entry"]:
                assert "urn:uuid:" not in json.dumps(entry["resource"])
