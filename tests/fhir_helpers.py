"""Small helpers for driving the FHIR API in tests."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

FHIR_JSON = "application/fhir+json"


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


def assert_outcome(response: TestResponse, status: int) -> dict[str, Any]:
    """Check an error response: the status and an OperationOutcome body."""
    assert response.status_code == status, (response.status_code, response.data[:500])
    body = response.json
    assert body is not None and body["resourceType"] == "OperationOutcome", body
    assert body["issue"][0]["severity"] in ("error", "fatal")
    return body
