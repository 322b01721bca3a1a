"""REST interactions: read, vread, update, delete, history, conditional create, Prefer."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from tests.fhir_helpers import FHIR_JSON, assert_outcome, create, post, put

pytestmark = pytest.mark.integration


def _patient(mrn: str) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": mrn}],
        "name": [{"family": "Doe"}],
    }


def test_create_read_vread_update_delete_history(client: FlaskClient) -> None:
    created = post(client, "/fhir/Patient", {**_patient("a"), "id": "client-chosen"})
    assert created.status_code == 201
    pid = created.json["id"]
    assert pid != "client-chosen"
    assert created.headers["Location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Last-Modified"].endswith("GMT")
    assert created.content_type == FHIR_JSON

    read = client.get(f"/fhir/Patient/{pid}")
    assert read.json["meta"]["versionId"] == "1" and read.headers["ETag"] == 'W/"1"'

    changed = {**read.json, "gender": "other"}
    stale = put(client, f"/fhir/Patient/{pid}", changed, **{"If-Match": 'W/"9"'})
    assert_outcome(stale, 412)
    updated = put(client, f"/fhir/Patient/{pid}", changed, **{"If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["ETag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{pid}/_history/1").json.get("gender") is None
    assert client.get(f"/fhir/Patient/{pid}/_history/2").json["gender"] == "other"

    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert_outcome(client.get(f"/fhir/Patient/{pid}"), 410)
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    history = client.get(f"/fhir/Patient/{pid}/_history").json
    assert history["type"] == "history" and history["total"] == 3
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]
    assert client.get(f"/fhir/Patient?_id={pid}").json.get("entry") is None


def test_update_creates_with_client_id_and_unknown_reads_are_404(client: FlaskClient) -> None:
    pid = f"p-{uuid.uuid4().hex[:12]}"
    response = put(client, f"/fhir/Patient/{pid}", {**_patient(pid), "id": pid})
    assert response.status_code == 201
    assert_outcome(client.get(f"/fhir/Patient/{uuid.uuid4()}"), 404)
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/7"), 404)
    assert_outcome(put(client, f"/fhir/Patient/{pid}", {**_patient(pid), "id": "other"}), 400)


def test_conditional_create(client: FlaskClient) -> None:
    mrn = uuid.uuid4().hex
    criteria = {"If-None-Exist": f"identifier=urn:test:mrn|{mrn}"}
    first = post(client, "/fhir/Patient", _patient(mrn), **criteria)
    assert first.status_code == 201
    again = post(client, "/fhir/Patient", _patient(mrn), **criteria)
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert client.get(f"/fhir/Patient?identifier={mrn}").json["total"] == 1
    create(client, _patient(mrn))
    assert_outcome(post(client, "/fhir/Patient", _patient(mrn), **criteria), 412)
    assert client.get(f"/fhir/Patient?identifier={mrn}").json["total"] == 2


def test_conditional_update_and_delete(client: FlaskClient) -> None:
    mrn = uuid.uuid4().hex
    url = f"/fhir/Patient?identifier=urn:test:mrn|{mrn}"
    assert put(client, url, _patient(mrn)).status_code == 201
    second = put(client, url, {**_patient(mrn), "gender": "male"})
    assert second.status_code == 200 and second.json["meta"]["versionId"] == "2"
    assert client.delete(url).status_code == 204
    assert client.get(f"/fhir/Patient?identifier={mrn}").json.get("total") == 0


def test_prefer_return(client: FlaskClient) -> None:
    minimal = post(client, "/fhir/Patient", _patient("m"), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.data == b"" and minimal.headers["Location"]
    outcome = post(client, "/fhir/Patient", _patient("m"), Prefer="return=OperationOutcome")
    assert outcome.json["resourceType"] == "OperationOutcome"
    full = post(client, "/fhir/Patient", _patient("m"), Prefer="return=representation")
    assert full.json["resourceType"] == "Patient"


def test_content_negotiation(client: FlaskClient) -> None:
    assert client.get("/fhir/metadata?_format=json").content_type == FHIR_JSON
    plain = client.get("/fhir/metadata", headers={"Accept": "application/json"})
    assert plain.content_type == "application/json"
    assert_outcome(client.get("/fhir/metadata?_format=xml"), 406)
    assert_outcome(client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    text = client.post("/fhir/Patient", data="{}", content_type="text/plain")
    assert_outcome(text, 415)
    json_body = client.post("/fhir/Patient", json=_patient("j"))
    assert json_body.status_code == 201


def test_capability_statement_describes_what_is_registered(client: FlaskClient) -> None:
    statement = client.get("/fhir/metadata").json
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    rest = statement["rest"][0]
    types = {r["type"]: r for r in rest["resource"]}
    for required in (
        "Patient",
        "DiagnosticReport",
        "ImagingStudy",
        "Task",
        "Binary",
        "Subscription",
    ):
        assert required in types
    report = types["DiagnosticReport"]
    params = {p["name"] for p in report["searchParam"]}
    assert {
        "patient",
        "category",
        "code",
        "date",
        "status",
        "based-on",
        "identifier",
        "result",
    } <= params
    assert report["conditionalCreate"] is True and report["versioning"] == "versioned-update"
    assert "DiagnosticReport:result" in report["searchInclude"]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}


def test_binary_raw_and_json(client: FlaskClient) -> None:
    response = client.post("/fhir/Binary", data=b"\x89PNG fake", content_type="image/png")
    assert response.status_code == 201
    bid = response.json["id"]
    raw = client.get(f"/fhir/Binary/{bid}", headers={"Accept": "image/png"})
    assert raw.data == b"\x89PNG fake" and raw.content_type == "image/png"
    assert client.get(f"/fhir/Binary/{bid}").json["contentType"] == "image/png"


def test_transaction_resolves_conditional_entries_and_references(client: FlaskClient) -> None:
    mrn = uuid.uuid4().hex
    existing = create(client, _patient(mrn))
    org_id = f"org-{mrn[:8]}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": {**_patient(mrn), "gender": "female"},
                "request": {"method": "PUT", "url": f"Patient?identifier=urn:test:mrn|{mrn}"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": _patient(mrn + "-new"),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier=urn:test:mrn|{mrn}-new",
                },
            },
            {
                "fullUrl": f"http://example.org/fhir/Organization/{org_id}",
                "resource": {"resourceType": "Organization", "id": org_id, "name": "Radiology"},
                "request": {"method": "PUT", "url": f"Organization/{org_id}"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                    "performer": [
                        {"reference": f"http://example.org/fhir/Organization/{org_id}"},
                        {"reference": f"Patient?identifier=urn:test:mrn|{mrn}"},
                    ],
                    "focus": [{"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"}],
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    response = post(client, "/fhir", bundle)
    assert response.status_code == 200, response.json
    statuses = [e["response"]["status"] for e in response.json["entry"]]
    assert statuses == ["200 OK", "201 Created", "201 Created", "201 Created"]
    new_patient_id = response.json["entry"][1]["response"]["location"].split("/")[1]
    observation_id = response.json["entry"][3]["response"]["location"].split("/")[1]
    observation = client.get(f"/fhir/Observation/{observation_id}").json
    assert observation["subject"]["reference"] == f"Patient/{existing['id']}"
    assert observation["performer"][0]["reference"] == f"Organization/{org_id}"
    assert observation["performer"][1]["reference"] == f"Patient/{existing['id']}"
    assert observation["focus"][0]["reference"] == f"Patient/{new_patient_id}"
    assert client.get(f"/fhir/Patient/{existing['id']}").json["gender"] == "female"
    again = post(client, "/fhir", {**bundle, "entry": bundle["entry"][1:2]})
    assert again.json["entry"][0]["response"]["status"] == "200 OK"
