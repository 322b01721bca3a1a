"""Bad input is refused with the right status and an OperationOutcome, and writes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_ai.app import create_app
from tests.conftest import build_app, make_settings
from tests.fhir_helpers import assert_outcome, new_patient, post

pytestmark = pytest.mark.integration


def _count(client: FlaskClient, query: str) -> int:
    return int(client.get(f"/fhir/{query}&_summary=count").json["total"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2]", 400),
        (b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}', 400),
        (b'{"resourceType": "Patient", "birthDate": "2020-02-30"}', 422),
        (b'{"resourceType": "Patient", "birthDate": "yesterday"}', 422),
        (b'{"resourceType": "Patient", "gender": "robot"}', 422),
        (b'{"resourceType": "Patient", "favouriteColour": "blue"}', 422),
        (b'{"resourceType": "Patient", "name": {"family": "not a list"}}', 422),
    ],
)
def test_bad_bodies_are_refused(client: FlaskClient, body: bytes, status: int) -> None:
    before = _count(client, "Patient?")
    response = client.post("/fhir/Patient", data=body, content_type="application/fhir+json")
    assert_outcome(response, status)
    assert _count(client, "Patient?") == before


def test_unknown_types_and_ids(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/Foo"), 404)
    assert_outcome(post(client, "/fhir/Foo", {"resourceType": "Foo"}), 404)
    assert_outcome(client.get("/fhir/Patient/not%20an%20id"), 400)
    assert_outcome(client.get("/fhir/Patient/a%0A"), 400)  # a final newline is not an id
    put = {"resourceType": "Patient", "id": "a\n"}
    assert_outcome(client.put("/fhir/Patient/a%0A", json=put), 400)
    assert_outcome(client.get("/fhir/Patient/a/b/c/d"), 404)
    assert_outcome(client.patch("/fhir/Patient/x"), 405)


@pytest.mark.parametrize(
    "value",
    [
        "' OR '1'='1",
        "1; DROP TABLE resource; --",
        "%' UNION SELECT * FROM resource --",
        "\\",
        "_%",
    ],
)
def test_sql_looking_search_values_are_plain_values(client: FlaskClient, value: str) -> None:
    for param in ("family", "identifier", "_id", "subject"):
        type_ = "Patient" if param != "subject" else "DiagnosticReport"
        response = client.get(f"/fhir/{type_}", query_string={param: value})
        assert response.status_code == 200, response.json
        assert response.json.get("total") == 0
    assert client.get("/fhir/Patient?_count=1").status_code == 200


def test_transaction_with_dangling_urn_uuid_writes_nothing(client: FlaskClient) -> None:
    family = f"Dangling{uuid.uuid4().hex[:8]}"
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                "resource": {"resourceType": "Patient", "name": [{"family": family}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    body = assert_outcome(post(client, "/fhir", bundle), 400)
    assert "entry 1" in body["issue"][0]["diagnostics"]
    assert _count(client, f"Patient?family:exact={family}") == 0


def test_transaction_with_an_invalid_resource_writes_nothing(client: FlaskClient) -> None:
    family = f"Rollback{uuid.uuid4().hex[:8]}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": family}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "birthDate": "1999-99-99"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    assert_outcome(post(client, "/fhir", bundle), 422)
    assert _count(client, f"Patient?family:exact={family}") == 0


def test_batch_reports_each_entry(client: FlaskClient) -> None:
    patient = new_patient(client)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{patient}"}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
            {
                "resource": {"resourceType": "Patient", "gender": "robot"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"request": {"method": "GET", "url": f"Patient?_id={patient}"}},
        ],
    }
    response = post(client, "/fhir", bundle)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json["entry"]]
    assert statuses == ["200 OK", "404", "422", "201 Created", "200 OK"]
    assert response.json["entry"][4]["resource"]["total"] == 1


def test_bad_bundles(client: FlaskClient) -> None:
    assert_outcome(post(client, "/fhir", {"resourceType": "Patient"}), 400)
    assert_outcome(post(client, "/fhir", {"resourceType": "Bundle", "type": "collection"}), 400)
    no_request = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]}
    assert_outcome(post(client, "/fhir", no_request), 400)


def test_oversized_body_is_refused(tmp_path: Path) -> None:
    app: Flask = build_app(make_settings(tmp_path, max_body_bytes=2048))
    client = app.test_client()
    big = {"resourceType": "Patient", "name": [{"family": "x" * 4096}]}
    assert_outcome(post(client, "/fhir/Patient", big), 413)
    assert client.get("/fhir/Patient?_summary=count").json["total"] == 0
    assert client.get("/healthz").status_code == 200


def test_unreachable_database_is_a_503_outcome(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    app = create_app(make_settings(tmp_path, database_url=url))
    client = app.test_client()
    body = assert_outcome(client.get("/fhir/Patient/abc"), 503)
    assert body["issue"][0]["code"] == "transient"
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
