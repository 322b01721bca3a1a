"""The FHIR R4 Patient compartment, as data, and one patient's compartment.

``compartment_patient.json`` is the official R4 (4.0.1) CompartmentDefinition/patient
(http://hl7.org/fhir/R4/compartmentdefinition-patient.html) without its narrative: for
each resource type, the search parameters that put a resource in a patient's compartment
when one of them refers to that Patient (Observation: ``subject``, ``performer``;
Encounter: ``patient``; Patient: ``link``, and the Patient itself). Types it lists
without parameters (Practitioner, Organization, Medication, Device, Task, Binary...) are
never in a patient's compartment.

Membership is decided from the reference index the store keeps on every write (one row
per reference search parameter value), never by decoding resources: a resource is in
``Patient/p``'s compartment when one of its compartment parameters has an index row with
target ``Patient`` / ``p``. Every compartment parameter of a type this server supports
is therefore a registered reference parameter (a unit test holds the two files to this).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

DEFINITION = Path(__file__).with_name("compartment_patient.json")


@dataclass(frozen=True, slots=True)
class CompartmentDefinition:
    """Which types can be in a patient's compartment, and through which parameters."""

    url: str
    params: Mapping[str, tuple[str, ...]]  # only the types that can be in the compartment

    def links(self, resource_type: str) -> tuple[str, ...]:
        """The parameters linking ``resource_type`` to the patient (empty: never in it)."""
        return self.params.get(resource_type, ())

    def includes(self, resource_type: str) -> bool:
        """True if resources of this type can be in a patient's compartment."""
        return resource_type in self.params


@cache
def patient_compartment(path: Path = DEFINITION) -> CompartmentDefinition:
    """The R4 Patient CompartmentDefinition, read once per process (the file is data)."""
    document: dict[str, Any] = json.loads(path.read_text())
    if document.get("resourceType") != "CompartmentDefinition" or document.get("code") != (
        "Patient"
    ):
        raise ValueError(f"{path} is not the Patient CompartmentDefinition")
    params = {
        entry["code"]: tuple(entry["param"]) for entry in document["resource"] if entry.get("param")
    }
    return CompartmentDefinition(document["url"], MappingProxyType(params))


@dataclass(frozen=True, slots=True)
class PatientCompartment:
    """One patient's compartment, for the types a request is confined to.

    ``links`` maps each confined type to the parameters that link it to the patient;
    types absent from it are not filtered (the caller decided they are visible whole, or
    refused them before the store was reached). For ``Patient`` itself the compartment
    holds the patient and the Patients whose ``link`` names it; only the patient itself
    can be written (:meth:`may_write`).
    """

    patient_id: str
    links: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(
        cls, patient_id: str, types: Iterable[str], definition: CompartmentDefinition
    ) -> PatientCompartment:
        """The compartment of ``patient_id`` confining those of ``types`` that can be in it."""
        links = {t: definition.links(t) for t in sorted(set(types)) if definition.includes(t)}
        return cls(patient_id, MappingProxyType(links))

    def confines(self, resource_type: str) -> bool:
        """True if resources of this type are visible only inside the compartment."""
        return resource_type in self.links

    def may_replace(self, resource_type: str, resource_id: str, stored_inside: bool) -> bool:
        """True if a stored resource may be updated or deleted: the patient itself (the
        Patient rule of :meth:`may_write`), or a resource whose stored index rows put it in
        the compartment (``stored_inside``)."""
        if resource_type == "Patient":
            return resource_id == self.patient_id
        return stored_inside

    def may_write(
        self, resource_type: str, resource_id: str, references: Iterable[dict[str, Any]]
    ) -> bool:
        """True if a resource with these reference index rows is in the compartment.

        ``references`` are the rows :func:`~fhir_ai.fhir.search.extract.extract` computes
        for the resource (``param``, ``target_type``, ``target_id``). A Patient is only
        writable as the patient itself: creating or changing another Patient record, even
        one linked to this patient, is not the patient's to do.
        """
        if resource_type == "Patient":
            return resource_id == self.patient_id
        params = self.links.get(resource_type, ())
        return any(
            row["param"] in params
            and row["target_type"] == "Patient"
            and row["target_id"] == self.patient_id
            for row in references
        )
