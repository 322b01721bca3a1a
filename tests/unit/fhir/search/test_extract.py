"""Index entries extracted from resources."""

from __future__ import annotations

from datetime import datetime

from fhir_ai.fhir.search.extract import extract, normalize_string, parse_reference
from fhir_ai.fhir.search.parameters import SearchRegistry

REGISTRY = SearchRegistry.load()


def test_diagnostic_report_entries() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": "http://loinc.org", "code": "LP29684-5"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}], "text": "CXR"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-02"},
        "identifier": [{"system": "urn:acc", "value": "A1"}],
        "result": [{"reference": "Observation/o1"}, {"reference": "#contained"}],
    }
    entries = extract(report, REGISTRY.parameters("DiagnosticReport"))
    tokens = {(t["param"], t["system"], t["code"]) for t in entries.tokens}
    assert ("status", None, "final") in tokens
    assert ("category", "http://loinc.org", "LP29684-5") in tokens
    assert ("identifier", "urn:acc", "A1") in tokens
    refs = {(r["param"], r["target_type"], r["target_id"]) for r in entries.references}
    assert {("patient", "Patient", "p1"), ("subject", "Patient", "p1")} <= refs
    assert ("result", "Observation", "o1") in refs
    assert len([r for r in refs if r[0] == "result"]) == 1
    assert {(d["param"], d["low"], d["high"]) for d in entries.dates} == {
        ("date", datetime(2024, 1, 1), datetime(2024, 1, 3))
    }


def test_patient_strings_and_telecom() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Müller", "given": ["Ann", "Lee"]}],
        "telecom": [{"system": "email", "value": "a@b.org"}],
        "active": True,
    }
    entries = extract(patient, REGISTRY.parameters("Patient"))
    strings = {(s["param"], s["value"]) for s in entries.strings}
    assert {("family", "muller"), ("given", "ann"), ("given", "lee"), ("name", "muller")} <= strings
    tokens = {(t["param"], t["code"]) for t in entries.tokens}
    assert {("email", "a@b.org"), ("telecom", "a@b.org"), ("active", "true")} <= tokens


def test_references_and_strings() -> None:
    assert parse_reference("Patient/1") == ("Patient", "1", None)
    assert parse_reference("Patient/1/_history/3") == ("Patient", "1", None)
    url = "https://ehr.example/fhir/Patient/7"
    assert parse_reference(url) == ("Patient", "7", url)
    assert parse_reference("urn:uuid:abc") == (None, None, "urn:uuid:abc")
    assert parse_reference("#c1") == (None, None, None)
    assert normalize_string("  ÉLODIE   de la  Cour ") == "elodie de la cour"
