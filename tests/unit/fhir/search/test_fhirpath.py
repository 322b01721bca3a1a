"""The FHIRPath subset used by search parameter expressions."""

from __future__ import annotations

import json

import pytest

from fhir_ai.fhir.search.fhirpath import UnsupportedExpression, compile_expression
from fhir_ai.fhir.search.parameters import DEFINITIONS


def values(expression: str, resource: dict[str, object]) -> list[object]:
    return list(compile_expression(expression).evaluate(resource))


def test_paths_lists_and_unions() -> None:
    report = {"result": [{"reference": "Observation/a"}, {"reference": "Observation/b"}],
              "basedOn": [{"reference": "ServiceRequest/s"}]}  # fmt: skip
    assert values("DiagnosticReport.result", report) == report["result"]
    assert len(values("DiagnosticReport.result | DiagnosticReport.basedOn", report)) == 3
    assert values("DiagnosticReport.conclusion", report) == []


def test_choice_elements_and_casts() -> None:
    observation = {"effectivePeriod": {"start": "2020"}, "valueQuantity": {"value": 1}}
    assert values("Observation.effective", observation) == [{"start": "2020"}]
    assert values("(Observation.value as Quantity)", observation) == [{"value": 1}]
    assert values("(Observation.value as CodeableConcept)", observation) == []
    assert values("Condition.onset.as(dateTime)", {"onsetDateTime": "2021"}) == ["2021"]
    assert values("(Observation.value as CodeableConcept).text",
                  {"valueCodeableConcept": {"text": "t"}}) == ["t"]  # fmt: skip


def test_where_filters() -> None:
    report = {"subject": {"reference": "Group/g"}}
    assert values("DiagnosticReport.subject.where(resolve() is Patient)", report) == []
    report = {"subject": {"reference": "http://x/fhir/Patient/p/_history/2"}}
    assert values("DiagnosticReport.subject.where(resolve() is Patient)", report) == [
        report["subject"]
    ]
    patient = {"telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "e"}]}
    assert values("Patient.telecom.where(system='email')", patient) == [patient["telecom"][1]]


def test_unsupported_expressions_are_refused() -> None:
    with pytest.raises(UnsupportedExpression):
        compile_expression("Patient.deceased.exists() and Patient.deceased != false")


def test_every_shipped_definition_compiles() -> None:
    definitions = json.loads(DEFINITIONS.read_text())["resources"]
    for params in definitions.values():
        for spec in params.values():
            compile_expression(spec["expression"])
