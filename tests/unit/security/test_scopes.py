"""SMART scopes: parsing (v1, v2, restrictions, junk) and the allows/permits decisions."""

from __future__ import annotations

import pytest

from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import SearchQuery, parse_query
from fhir_ai.security.scopes import INTERACTIONS, Interaction, Scope, ScopeSet, parse_scope

READS = {"read", "vread", "search", "history"}
WRITES = {"create", "update", "delete"}
REGISTRY = SearchRegistry.load()


def query(resource_type: str, params: str) -> SearchQuery:
    pairs = [tuple(p.split("=", 1)) for p in params.split("&") if p]
    return parse_query(
        REGISTRY,
        resource_type,
        [(k, v) for k, v in pairs],
        strict=False,
        default_count=20,
        max_count=100,
    )


def granted(scopes: str, resource_type: str = "DiagnosticReport") -> set[str]:
    scope_set = ScopeSet.parse(scopes)
    return {i for i in INTERACTIONS if scope_set.allows(resource_type, i)}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("system/DiagnosticReport.read", READS),
        ("system/DiagnosticReport.write", WRITES),
        ("system/DiagnosticReport.*", READS | WRITES),
        ("user/DiagnosticReport.read", READS),
        ("system/DiagnosticReport.c", {"create"}),
        ("system/DiagnosticReport.r", {"read", "vread", "history"}),
        ("system/DiagnosticReport.u", {"update"}),
        ("system/DiagnosticReport.d", {"delete"}),
        ("system/DiagnosticReport.s", {"search"}),
        ("system/DiagnosticReport.rs", {"read", "vread", "history", "search"}),
        ("system/DiagnosticReport.cruds", READS | WRITES),
        ("system/DiagnosticReport.cud", WRITES),
        ("system/*.rs", {"read", "vread", "history", "search"}),
        ("system/*.*", READS | WRITES),
        ("user/*.cruds", READS | WRITES),
    ],
)
def test_interaction_matrix(scope: str, expected: set[str]) -> None:
    assert granted(scope) == expected


@pytest.mark.parametrize(
    "scope",
    [
        "system/Patient.read",  # another type
        "system/DiagnosticReport.",  # no permissions
        "system/DiagnosticReport.sr",  # v2 letters out of order
        "system/DiagnosticReport.crudsx",
        "system/DiagnosticReport.rr",
        "system/DiagnosticReport.readwrite",
        "system/diagnosticReport.read",  # types start upper case
        "admin/DiagnosticReport.read",
        "system/DiagnosticReport",
        "DiagnosticReport.read",
        "system/DiagnosticReport.read?category=x",  # v1 takes no restrictions
        "openid",
        "fhirUser",
        "launch/patient",
        "offline_access",
        "",
    ],
)
def test_other_and_invalid_scopes_grant_nothing(scope: str) -> None:
    assert granted(scope) == set()


def test_scope_string_and_list_are_combined() -> None:
    scopes = ScopeSet.parse("openid system/Patient.r  junk system/Observation.s")
    assert scopes.allows("Patient", "read")
    assert scopes.allows("Observation", "search")
    assert not scopes.allows("Patient", "search")
    listed = ScopeSet.parse(["system/Patient.r", "system/Observation.s system/Task.c", 3])  # type: ignore[list-item]
    assert listed.allows("Observation", "search")
    assert listed.allows("Task", "create")
    assert ScopeSet.parse(None).scopes == ()


def test_parse_scope_fields() -> None:
    assert parse_scope("patient/Observation.rs?category=laboratory&status=final") == Scope(
        "patient",
        "Observation",
        frozenset({"read", "vread", "history", "search"}),
        (("category", "laboratory"), ("status", "final")),
    )
    assert parse_scope("system/Observation.rs?category") is None
    assert parse_scope("system/Observation.rs?") is None
    assert parse_scope("system/Observation.rs?=x") is None


def test_patient_and_restricted_scopes_are_not_unconditional() -> None:
    scopes = ScopeSet.parse("patient/*.cruds system/Observation.rs?category=laboratory", "p1")
    for interaction in INTERACTIONS:
        assert not scopes.allows("Observation", interaction)
        assert not scopes.allows("Patient", interaction)


@pytest.mark.parametrize(
    ("resource_type", "interaction", "resource_id", "params", "allowed"),
    [
        ("Patient", "read", "p1", None, True),
        ("Patient", "vread", "p1", None, True),
        ("Patient", "history", "p1", None, True),
        ("Patient", "read", "p2", None, False),
        ("Patient", "search", None, "_id=p1", True),
        ("Patient", "search", None, "_id=p1,p2", False),
        ("Patient", "search", None, "name=Smith", False),
        ("Observation", "search", None, "patient=p1", True),
        ("Observation", "search", None, "patient=Patient/p1", True),
        ("Observation", "search", None, "subject=Patient/p1", True),
        ("Observation", "search", None, "subject:Patient=p1", True),
        ("Observation", "search", None, "patient=p1&code=1234-5", True),
        ("Observation", "search", None, "subject=p1", False),  # could be a Group
        ("Observation", "search", None, "patient=p1,p2", False),
        ("Observation", "search", None, "patient=p2", False),
        ("Observation", "search", None, "patient:missing=true", False),
        ("Observation", "search", None, "code=1234-5", False),
        ("Observation", "search", None, "", False),
        ("Observation", "search", None, "unknown=p1", False),
        ("Observation", "read", "o1", None, False),
        ("Observation", "create", None, None, False),
        ("Patient", "update", "p1", None, False),
        ("Patient", "delete", "p1", None, False),
    ],
)
def test_patient_scopes_stay_in_the_patient(
    resource_type: str,
    interaction: Interaction,
    resource_id: str | None,
    params: str | None,
    allowed: bool,
) -> None:
    scopes = ScopeSet.parse("patient/*.cruds", patient="p1")
    search = query(resource_type, params) if params is not None else None
    decision = scopes.permits(resource_type, interaction, resource_id=resource_id, search=search)
    assert decision is allowed


def test_patient_scopes_need_the_patient_claim_and_the_type() -> None:
    no_patient = ScopeSet.parse("patient/*.rs")
    assert not no_patient.permits("Patient", "read", resource_id="p1")
    assert not no_patient.permits(
        "Observation", "search", search=query("Observation", "patient=p1")
    )
    only_observations = ScopeSet.parse("patient/Observation.rs", "p1")
    assert only_observations.permits(
        "Observation", "search", search=query("Observation", "patient=p1")
    )
    assert not only_observations.permits("Patient", "read", resource_id="p1")
    assert not only_observations.permits(
        "Condition", "search", search=query("Condition", "patient=p1")
    )


def test_restricted_v2_scope_grants_matching_searches_only() -> None:
    scopes = ScopeSet.parse("system/Observation.rs?category=laboratory,imaging")
    assert scopes.permits(
        "Observation", "search", search=query("Observation", "category=laboratory")
    )
    assert scopes.permits(
        "Observation", "search", search=query("Observation", "category=laboratory,imaging&code=x")
    )
    assert not scopes.permits(
        "Observation", "search", search=query("Observation", "category=laboratory,vital-signs")
    )
    assert not scopes.permits("Observation", "search", search=query("Observation", "code=x"))
    assert not scopes.permits(
        "Observation", "search", search=query("Observation", "category:not=laboratory")
    )
    assert not scopes.permits("Observation", "search")
    assert not scopes.permits("Observation", "read", resource_id="o1")


def test_includes_need_read_on_the_included_types() -> None:
    observations = ScopeSet.parse("system/Observation.rs")
    with_patients = ScopeSet.parse("system/Observation.rs system/Patient.r")
    everything = ScopeSet.parse("system/*.rs")
    typed = query("Observation", "_include=Observation:subject:Patient")
    untyped = query("Observation", "_include=Observation:subject")
    assert not observations.permits("Observation", "search", search=typed)
    assert with_patients.permits("Observation", "search", search=typed)
    assert not with_patients.permits("Observation", "search", search=untyped)
    assert everything.permits("Observation", "search", search=untyped)
    reverse = query("Patient", "_revinclude=Observation:patient")
    assert not ScopeSet.parse("system/Patient.rs").permits("Patient", "search", search=reverse)
    assert with_patients.permits("Patient", "read") is True
    assert ScopeSet.parse("system/Patient.rs system/Observation.r").permits(
        "Patient", "search", search=reverse
    )
    patient = ScopeSet.parse("patient/*.rs", "p1")
    compartment = query("Observation", "patient=p1&_include=Observation:subject:Patient")
    assert not patient.permits("Observation", "search", search=compartment)


def test_repr_holds_no_claims() -> None:
    assert repr(ScopeSet.parse("system/*.rs", "secret-patient")) == (
        "ScopeSet(1 scopes, patient=True)"
    )


def test_mentions_ignores_conditions() -> None:
    scopes = ScopeSet.parse("patient/Observation.rs system/Task.c?status=draft")
    assert scopes.mentions("Observation", "search")
    assert scopes.mentions("Task", "create")
    assert not scopes.mentions("Patient", "read")
    assert not scopes.allows("Observation", "search")
