"""NLP extraction as jobs: a DocumentReference becomes a Task, a worker extracts, results
are stored once; ``$extract`` on a document and on plain text.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fhir_ai.fhir.nlp_results import read_finding
from tests.worker_helpers import JobStack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

NOTE = (
    "HISTORY OF PRESENT ILLNESS: 67 year old man with type 2 diabetes mellitus and "
    "hypertension presents with cough. He denies chest pain. No evidence of pneumonia.\n"
    "FAMILY HISTORY: Mother had breast cancer.\n"
)


def _document(text: str, content_type: str = "text/plain") -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "date": "2026-11-20T10:00:00Z",
        "content": [
            {
                "attachment": {
                    "contentType": content_type,
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("nlp-jobs")
    with running_stack(tmp, "nlp,default", extract_on_create=True) as built:
        yield built


def _task_for(stack: JobStack, reference: str) -> str:
    bundle = stack.client.get("/fhir/Task", query_string={"focus": reference}).get_json()
    assert bundle["total"] >= 1, bundle
    return str(bundle["entry"][0]["resource"]["id"])


def test_creating_a_document_extracts_its_findings_once(stack: JobStack) -> None:
    created = stack.client.post("/fhir/DocumentReference", json=_document(NOTE))
    assert created.status_code == 201
    doc_id = created.get_json()["id"]
    task = stack.wait_task(_task_for(stack, f"DocumentReference/{doc_id}/_history/1"))
    assert task["status"] == "completed", (task, stack.log())
    report_ref = task["output"][0]["valueReference"]["reference"]
    report = stack.client.get(f"/fhir/{report_ref}").get_json()
    assert report["status"] in ("final", "preliminary")
    findings = [
        read_finding(stack.client.get(f"/fhir/{r['reference']}").get_json())
        for r in report["result"]
    ]
    by_name = {f.display.lower(): f for f in findings}
    affirmed = {name for name, f in by_name.items() if f.affirmed}
    assert any("diabetes" in name for name in affirmed), by_name
    assert any("hypertension" in name for name in affirmed), by_name
    assert not any("pneumonia" in name for name in affirmed)
    assert not any("breast" in name for name in affirmed)  # the mother's, not the patient's
    # $extract again: the same Task (same document version and pipeline), nothing new
    again = stack.client.post(f"/fhir/DocumentReference/{doc_id}/$extract")
    assert again.status_code == 202
    assert again.headers["Content-Location"].endswith(f"/Task/{task['id']}")
    observations = stack.client.get("/fhir/Observation", query_string={"_summary": "count"})
    count = observations.get_json()["total"]
    assert count == len(report["result"])


def test_a_poison_document_fails_once_with_its_reason(stack: JobStack) -> None:
    created = stack.client.post(
        "/fhir/DocumentReference", json=_document("Asthma.", "text/plain; charset=x-no-such")
    )
    doc_id = created.get_json()["id"]
    task = stack.wait_task(_task_for(stack, f"DocumentReference/{doc_id}/_history/1"))
    assert task["status"] == "failed"
    assert "unknown character set" in task["statusReason"]["text"]


def test_synchronous_extract_of_plain_text(stack: JobStack) -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "text", "valueString": "Chest X-ray shows no pneumothorax."}],
    }
    response = stack.client.post("/fhir/$extract", json=parameters)
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    observations = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    assert observations and all(read_finding(o).assertion == "absent" for o in observations)
    empty = {"resourceType": "Parameters", "parameter": [{"name": "text", "valueString": " "}]}
    refused = stack.client.post("/fhir/$extract", json=empty)
    assert refused.status_code in (400, 422)
    assert refused.get_json()["resourceType"] == "OperationOutcome"
