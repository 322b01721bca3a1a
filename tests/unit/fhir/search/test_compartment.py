"""The R4 Patient CompartmentDefinition as data, and the write rule of one compartment."""

from __future__ import annotations

import json

import pytest

from fhir_ai.fhir.search.compartment import DEFINITION, PatientCompartment, patient_compartment
from fhir_ai.fhir.search.extract import extract
from fhir_ai.fhir.search.parameters import SearchRegistry

REGISTRY = SearchRegistry.load()


def test_definition_is_the_r4_patient_compartment() -> None:
    document = json.loads(DEFINITION.read_text())
    assert document["url"] == "http://hl7.org/fhir/CompartmentDefinition/patient"
    assert document["version"] == "4.0.1"
    assert len(document["resource"]) == 145  # every R4 resource type, listed once
    assert len({entry["code"] for entry in document["resource"]}) == 145
    definition = patient_compartment()
    assert definition.links("Observation") == ("subject", "performer")
    assert definition.links("DiagnosticReport") == ("subject",)
    assert definition.links("Encounter") == ("patient",)
    assert definition.links("Patient") == ("link",)
    assert definition.links("Condition") == ("patient", "asserter")
    assert definition.links("MedicationRequest") == ("subject",)
    for never in ("Practitioner", "Organization", "Medication", "Device", "Task", "Binary"):
        assert not definition.includes(never)
        assert definition.links(never) == ()


def test_every_compartment_parameter_of_a_supported_type_is_indexed() -> None:
    """Membership is read from the reference index: each link must be indexed."""
    definition = patient_compartment()
    in_compartment = [t for t in REGISTRY.resource_types if definition.includes(t)]
    assert "Observation" in in_compartment and "AllergyIntolerance" in in_compartment
    for resource_type in in_compartment:
        for name in definition.links(resource_type):
            parameter = REGISTRY.get(resource_type, name)
            assert parameter is not None, f"{resource_type}.{name} is not a search parameter"
            assert parameter.type == "reference", f"{resource_type}.{name}"


def _refs(resource: dict[str, object]) -> list[dict[str, object]]:
    return extract(resource, REGISTRY.parameters(str(resource["resourceType"]))).references


def test_may_write_follows_the_compartment_parameters() -> None:
    compartment = PatientCompartment.of(
        "p1", ["Observation", "Patient", "Practitioner"], patient_compartment()
    )
    assert compartment.confines("Observation") and compartment.confines("Patient")
    assert not compartment.confines("Practitioner")  # never in a compartment: not confined
    mine = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}
    assert compartment.may_write("Observation", "o1", _refs(mine))
    performed = {
        "resourceType": "Observation",
        "subject": {"reference": "Group/g1"},
        "performer": [{"reference": "Patient/p1"}],
    }
    assert compartment.may_write("Observation", "o2", _refs(performed))
    for other in (
        {"resourceType": "Observation", "subject": {"reference": "Patient/p2"}},
        {"resourceType": "Observation", "subject": {"reference": "Group/p1"}},
        {"resourceType": "Observation", "focus": [{"reference": "Patient/p1"}]},
        {"resourceType": "Observation", "status": "final"},
    ):
        assert not compartment.may_write("Observation", "o3", _refs(other)), other


@pytest.mark.parametrize(("resource_id", "allowed"), [("p1", True), ("p2", False)])
def test_only_the_patient_itself_is_writable(resource_id: str, allowed: bool) -> None:
    compartment = PatientCompartment.of("p1", ["Patient"], patient_compartment())
    linked = {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/p1"}}]}
    assert compartment.may_write("Patient", resource_id, _refs(linked)) is allowed
