"""SMART scopes: parsing (v1, v2, restrictions, junk) and the allows/decide decisions."""

from __future__ import annotations

import pytest

from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import SearchQuery, parse_query
from fhir_ai.security.scopes import (
    ALLOWED,
    DENIED,
    INTERACTIONS,
    Decision,
    Interaction,
    Scope,
    ScopeSet,
    parse_scope,
)

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


def confined(*types: str) -> Decision:
    return Decision(True, frozenset(types))


@pytest.mark.parametrize(
    ("resource_type", "interaction", "params", "expected"),
    [
        # compartment types: every interaction, confined to the compartment
        ("Patient", "read", None, confined("Patient")),
        ("Patient", "vread", None, confined("Patient")),
        ("Patient", "history", None, confined("Patient")),
        ("Patient", "update", None, confined("Patient")),
        ("Patient", "search", "name=Smith", confined("Patient")),
        ("Observation", "read", None, confined("Observation")),
        ("Observation", "search", "", confined("Observation")),
        ("Observation", "search", "patient=p2", confined("Observation")),  # finds nothing
        ("Observation", "search", "code=1234-5", confined("Observation")),
        ("Observation", "create", None, confined("Observation")),
        ("Observation", "delete", None, confined("Observation")),
        ("Encounter", "search", "", confined("Encounter")),
        ("AuditEvent", "read", None, confined("AuditEvent")),
        # types that interpret the record: read and search, whole, never writes
        ("Practitioner", "read", None, ALLOWED),
        ("Practitioner", "search", "name=Careful", ALLOWED),
        ("Organization", "vread", None, ALLOWED),
        ("Location", "history", None, ALLOWED),
        ("PractitionerRole", "search", "", ALLOWED),
        ("Medication", "read", None, ALLOWED),
        ("Practitioner", "create", None, DENIED),
        ("Organization", "update", None, DENIED),
        ("Location", "delete", None, DENIED),
        # other types outside the compartment: nothing
        ("Task", "read", None, DENIED),
        ("Task", "search", "patient=p1", DENIED),
        ("Binary", "read", None, DENIED),
        ("Device", "search", "patient=p1", DENIED),
        ("Endpoint", "read", None, DENIED),
        ("Subscription", "create", None, DENIED),
    ],
)
def test_patient_scopes_confine_to_the_compartment(
    resource_type: str, interaction: Interaction, params: str | None, expected: Decision
) -> None:
    scopes = ScopeSet.parse("patient/*.cruds", patient="p1")
    search = query(resource_type, params) if params is not None else None
    assert scopes.decide(resource_type, interaction, search=search) == expected


def test_patient_scopes_need_the_patient_claim_and_the_type() -> None:
    no_patient = ScopeSet.parse("patient/*.rs")
    assert no_patient.decide("Patient", "read") == DENIED
    assert no_patient.decide("Practitioner", "read") == DENIED
    assert no_patient.decide("Observation", "search", search=query("Observation", "")) == DENIED
    only_observations = ScopeSet.parse("patient/Observation.rs", "p1")
    assert only_observations.decide("Observation", "search", search=query("Observation", "")) == (
        confined("Observation")
    )
    assert only_observations.decide("Patient", "read") == DENIED
    assert only_observations.decide("Observation", "create") == DENIED
    assert only_observations.decide("Condition", "search", search=query("Condition", "")) == DENIED


def test_v1_write_and_v2_letters_on_patient_scopes() -> None:
    v1 = ScopeSet.parse("patient/Observation.write", "p1")
    for interaction in ("create", "update", "delete"):
        assert v1.decide("Observation", interaction) == confined("Observation")
    assert v1.decide("Observation", "read") == DENIED
    create_only = ScopeSet.parse("patient/Observation.c", "p1")
    assert create_only.decide("Observation", "create") == confined("Observation")
    assert create_only.decide("Observation", "update") == DENIED


def test_system_or_user_grants_win_over_patient_grants() -> None:
    both = ScopeSet.parse("patient/*.rs user/Observation.rs", "p1")
    assert both.decide("Observation", "search", search=query("Observation", "")) == ALLOWED
    assert both.decide("Condition", "search", search=query("Condition", "")) == (
        confined("Condition")
    )
    labs = ScopeSet.parse("patient/*.rs system/Observation.rs?category=laboratory", "p1")
    lab_search = query("Observation", "category=laboratory")
    assert labs.decide("Observation", "search", search=lab_search) == ALLOWED
    assert labs.decide("Observation", "search", search=query("Observation", "")) == (
        confined("Observation")
    )


def test_restricted_patient_scope_is_restricted_and_confined() -> None:
    labs = ScopeSet.parse("patient/Observation.rs?category=laboratory", "p1")
    lab_search = query("Observation", "category=laboratory")
    assert labs.decide("Observation", "search", search=lab_search) == confined("Observation")
    assert labs.decide("Observation", "search", search=query("Observation", "")) == DENIED
    assert labs.decide("Observation", "read") == DENIED


def test_restricted_v2_scope_grants_matching_searches_only() -> None:
    scopes = ScopeSet.parse("system/Observation.rs?category=laboratory,imaging")

    def allowed(params: str | None, interaction: Interaction = "search") -> bool:
        search = query("Observation", params) if params is not None else None
        return scopes.decide("Observation", interaction, search=search).allowed

    assert allowed("category=laboratory")
    assert allowed("category=laboratory,imaging&code=x")
    assert not allowed("category=laboratory,vital-signs")
    assert not allowed("code=x")
    assert not allowed("category:not=laboratory")
    assert not allowed(None)
    assert not allowed(None, "read")


def test_includes_need_read_on_the_included_types() -> None:
    observations = ScopeSet.parse("system/Observation.rs")
    with_patients = ScopeSet.parse("system/Observation.rs system/Patient.r")
    everything = ScopeSet.parse("system/*.rs")
    typed = query("Observation", "_include=Observation:subject:Patient")
    untyped = query("Observation", "_include=Observation:subject")
    assert observations.decide("Observation", "search", search=typed) == DENIED
    assert with_patients.decide("Observation", "search", search=typed) == ALLOWED
    assert with_patients.decide("Observation", "search", search=untyped) == DENIED
    assert everything.decide("Observation", "search", search=untyped) == ALLOWED
    reverse = query("Patient", "_revinclude=Observation:patient")
    assert ScopeSet.parse("system/Patient.rs").decide("Patient", "search", search=reverse) == (
        DENIED
    )
    assert (
        ScopeSet.parse("system/Patient.rs system/Observation.r").decide(
            "Patient", "search", search=reverse
        )
        == ALLOWED
    )


def test_patient_scoped_includes_are_confined_or_refused() -> None:
    patient = ScopeSet.parse("patient/*.rs", "p1")

    def decide(resource_type: str, params: str) -> Decision:
        return patient.decide(resource_type, "search", search=query(resource_type, params))

    assert decide("Observation", "_include=Observation:subject:Patient") == confined(
        "Observation", "Patient"
    )
    assert decide("Observation", "_include=Observation:performer:Practitioner") == confined(
        "Observation"
    )
    assert decide("Patient", "_revinclude=Observation:patient") == confined(
        "Patient", "Observation"
    )
    assert decide("Practitioner", "_revinclude=Observation:performer") == confined("Observation")
    assert decide("Observation", "_include=Observation:subject") == DENIED  # untyped
    assert decide("Observation", "_include=Observation:device:Device") == DENIED
    assert decide("ImagingStudy", "_revinclude=Task:focus") == DENIED
    only_observations = ScopeSet.parse("patient/Observation.rs", "p1")
    assert (
        only_observations.decide(
            "Observation",
            "search",
            search=query("Observation", "_include=Observation:subject:Patient"),
        )
        == DENIED
    )


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
