"""Index entries extracted from resources."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_ai.fhir.search import extract as extract_module
from fhir_ai.fhir.search.extract import (
    extract,
    index_fingerprint,
    normalize_string,
    parse_reference,
)
from fhir_ai.fhir.search.fhirpath import element_names
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


def test_patient_dates_repeat_each_date_under_each_patient_named() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "CXR"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01",
        "issued": "2024-01-02T10:00:00Z",
    }
    entries = extract(report, REGISTRY.parameters("DiagnosticReport"))
    dates = {(d["param"], d["low"], d["high"]) for d in entries.dates}
    assert len(dates) == 2
    assert {(d["patient_id"], d["param"], d["low"], d["high"]) for d in entries.patient_dates} == {
        ("p1", *date) for date in dates
    }
    of_a_group = {**report, "subject": {"reference": "Group/g1"}}
    assert extract(of_a_group, REGISTRY.parameters("DiagnosticReport")).patient_dates == []
    undated = {
        key: value for key, value in report.items() if key not in ("effectiveDateTime", "issued")
    }
    assert extract(undated, REGISTRY.parameters("DiagnosticReport")).patient_dates == []


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


def test_choice_elements_are_found_under_every_name_a_path_can_use() -> None:
    names = element_names({"deceasedDateTime": "2020", "multipleBirthBoolean": True, "id": "x"})
    assert {"deceased", "deceasedDateTime", "multipleBirth", "multiple", "id"} <= names
    patient = {"resourceType": "Patient", "deceasedDateTime": "2020-05-01"}
    entries = extract(patient, REGISTRY.parameters("Patient"))
    assert [(d["param"], d["low"]) for d in entries.dates] == [("death-date", datetime(2020, 5, 1))]


def _examples(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        entries = document.get("entry", []) if document.get("resourceType") == "Bundle" else []
        found += [document] + [e["resource"] for e in entries if "resource" in e]
    return [r for r in found if REGISTRY.supports(str(r.get("resourceType")))]


def test_parameters_are_skipped_only_when_they_would_find_nothing(shared_data: Path) -> None:
    examples = _examples(shared_data / "fhir")
    assert len(examples) > 100
    for resource in examples:
        params = REGISTRY.parameters(resource["resourceType"])
        present = element_names(resource)
        for name, param in params.items():
            if param.expression.roots.isdisjoint(present):
                assert not list(param.expression.evaluate(resource)), (resource["id"], name)


def _definitions() -> dict[str, dict[str, dict[str, str]]]:
    from fhir_ai.fhir.search.parameters import DEFINITIONS

    resources: dict[str, dict[str, dict[str, str]]] = json.loads(DEFINITIONS.read_text())[
        "resources"
    ]
    return resources


def test_the_index_fingerprint_follows_what_the_rows_depend_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = {
        kind: index_fingerprint(REGISTRY.parameters(kind)) for kind in REGISTRY.resource_types
    }
    assert len(set(before.values())) == len(before)  # every type its own
    reordered = _definitions()
    reordered["Observation"] = dict(reversed(list(reordered["Observation"].items())))
    assert (
        index_fingerprint(SearchRegistry(reordered).parameters("Observation"))
        == (before["Observation"])
    )
    changed = _definitions()
    changed["Observation"]["subject"]["expression"] = "Observation.focus"
    added = _definitions()
    added["Observation"]["note-text"] = {"type": "string", "expression": "Observation.note.text"}
    for definitions in (changed, added):
        after = SearchRegistry(definitions)
        assert index_fingerprint(after.parameters("Observation")) != before["Observation"]
        assert index_fingerprint(after.parameters("Patient")) == before["Patient"]
    monkeypatch.setattr(extract_module, "INDEX_FORMAT", extract_module.INDEX_FORMAT + 1)
    assert index_fingerprint(REGISTRY.parameters("Patient")) != before["Patient"]
