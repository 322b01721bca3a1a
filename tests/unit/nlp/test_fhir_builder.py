"""The extraction Bundle: contract Observations (read_finding), evidence, idempotency keys."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from fhir_ai.fhir.nlp_results import EVIDENCE, read_finding
from fhir_ai.nlp.extract import extract_for_resource, extract_text
from fhir_ai.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NOTE = (
    "History of Present Illness:\nCough for 3 days. Possible pneumonia.\n"
    "Past Medical History:\nType 2 diabetes.\nFamily History:\nMother with breast cancer.\n"
    "Extremities: No clubbing, cyanosis, or edema.\nA 7 mm nodule in the right upper lobe.\n"
)


def _document(version: str = "1") -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": "note-1",
        "meta": {"versionId": version},
        "subject": {"reference": "Patient/p1"},
        "date": "2026-11-20T09:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain",
                                    "data": base64.b64encode(NOTE.encode()).decode()}}],
    }  # fmt: skip


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_observations_follow_the_note_findings_contract() -> None:
    bundle = extract_for_resource(_document(), lambda url: None, Settings(), now=NOW)
    findings = {read_finding(o).display: read_finding(o) for o in _resources(bundle, "Observation")}
    assert findings["Pneumonia"].assertion == "possible"
    assert findings["Cough"].affirmed
    assert findings["Type 2 diabetes mellitus"].historical
    assert ("http://snomed.info/sct", "44054006") in findings["Type 2 diabetes mellitus"].codings
    assert findings["Breast cancer"].family and not findings["Breast cancer"].affirmed
    assert findings["Cyanosis"].assertion == "absent"
    assert findings["Cough"].document == "DocumentReference/note-1"
    assert findings["Cough"].sentence == "Cough for 3 days."


def test_evidence_offsets_point_into_the_text_and_sizes_are_kept() -> None:
    bundle = extract_for_resource(_document(), lambda url: None, Settings(), now=NOW)
    for observation in _resources(bundle, "Observation"):
        (evidence,) = [e for e in observation["extension"] if e["url"] == EVIDENCE]
        parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value"))
                 for p in evidence["extension"]}  # fmt: skip
        assert NOTE[parts["start"] : parts["end"]] == parts["text"]
    nodule = next(
        o for o in _resources(bundle, "Observation") if o["code"]["text"] == "Pulmonary nodule"
    )
    sizes = [c["valueQuantity"]["value"] for c in nodule["component"] if "valueQuantity" in c]
    assert sizes == [7.0]


def test_every_entry_is_a_conditional_create_and_reruns_are_identical() -> None:
    first = extract_for_resource(_document(), lambda url: None, Settings(), now=NOW)
    again = extract_for_resource(_document(), lambda url: None, Settings(), now=NOW)
    assert first == again
    assert all(
        e["request"]["method"] == "POST" and e["request"]["ifNoneExist"] for e in first["entry"]
    )
    newer = extract_for_resource(_document("2"), lambda url: None, Settings(), now=NOW)
    keys = {e["request"]["ifNoneExist"] for e in first["entry"]}
    assert keys & {e["request"]["ifNoneExist"] for e in newer["entry"]} == {
        e["request"]["ifNoneExist"]
        for e in first["entry"]
        if e["resource"]["resourceType"] == "Device"
    }


def test_report_device_and_provenance() -> None:
    bundle = extract_for_resource(_document(), lambda url: None, Settings(), now=NOW)
    (report,) = _resources(bundle, "DiagnosticReport")
    (device,) = _resources(bundle, "Device")
    (provenance,) = _resources(bundle, "Provenance")
    assert report["code"]["coding"][0]["code"] == "note-extraction"
    assert len(report["result"]) == len(_resources(bundle, "Observation"))
    assert (
        report["extension"][0]["valueReference"]["reference"]
        == "DocumentReference/note-1/_history/1"
    )
    assert device["version"][0]["value"].startswith("fhir-ai ")
    assert provenance["entity"][0]["what"]["reference"] == "DocumentReference/note-1/_history/1"
    assert len(provenance["target"]) == 1 + len(report["result"])


def test_plain_text_gives_a_collection() -> None:
    bundle = extract_text("No pneumothorax. Mild cardiomegaly.", Settings(), now=NOW)
    assert bundle["type"] == "collection"
    assert all("request" not in e for e in bundle["entry"])
    assert [read_finding(o).assertion for o in _resources(bundle, "Observation")] == [
        "absent",
        "present",
    ]
