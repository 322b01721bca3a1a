"""Parsing search parameters."""

from __future__ import annotations

import pytest

from fhir_ai.errors import InvalidRequest, UnsupportedParameter
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import parse_query, split_values

REGISTRY = SearchRegistry.load()


def parse(params: list[tuple[str, str]], strict: bool = True):  # type: ignore[no-untyped-def]
    return parse_query(
        REGISTRY, "DiagnosticReport", params, strict=strict, default_count=20, max_count=100
    )


def test_criteria_controls_and_includes() -> None:
    query = parse(
        [
            ("patient:Patient", "p1"),
            ("category", "RAD,LAB"),
            ("_count", "500"),
            ("_sort", "-date,_id"),
            ("_include", "DiagnosticReport:result"),
            ("_revinclude", "Provenance:target"),
        ]
    )
    assert query.count == 100
    patient, category = query.criteria
    assert (patient.name, patient.target_type, patient.values) == ("patient", "Patient", ("p1",))
    assert category.values == ("RAD", "LAB")
    assert [(k.name, k.descending) for k in query.sort] == [("date", True), ("_id", False)]
    assert query.includes[0].param == "result" and query.revincludes[0].source_type == "Provenance"


def test_escaped_commas() -> None:
    assert split_values(r"a\,b,c") == ("a,b", "c")


def test_unknown_parameters_strict_and_lenient() -> None:
    with pytest.raises(UnsupportedParameter):
        parse([("colour", "red")])
    assert parse([("colour", "red")], strict=False).ignored == ["colour"]


@pytest.mark.parametrize(
    "params",
    [
        [("_count", "x")],
        [("status:below", "final")],
        [("code:missing", "maybe")],
        [("_include", "result")],
        [("_sort", "subject")],
        [("_total", "all")],
    ],
)
def test_bad_parameters(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest):
        parse(params)
