"""Build fhir_ai/fhir/search/search_parameters.json from the official FHIR R4 definitions.

Input: the R4 (4.0.1) SearchParameter Bundle from the hl7.fhir.r4.examples package (CC0),
read in place from the shared data directory, plus the hand-written definitions below for
types the subset Bundle does not cover (taken from the R4 spec's search pages, CC0).

    python scripts/build_search_parameters.py ../shared/data
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SUBSET = (
    "fhir/r4-official-examples/Bundle-searchParams-SUBSET-DiagnosticReport-Observation-"
    "ImagingStudy-DocumentReference-Condition-Patient-ServiceRequest-Subscription-common.json"
)
SUPPORTED_TYPES = {"token", "reference", "date", "string", "uri"}
REGISTERED = [
    # The types of the product, then the patient-record types EHR exports (Synthea, US Core) carry.
    "Patient", "Practitioner", "Organization", "Device", "Endpoint", "ImagingStudy",
    "DocumentReference", "DiagnosticReport", "Observation", "Condition", "ServiceRequest",
    "Task", "Provenance", "Binary", "Subscription",
    "Encounter", "Immunization", "Procedure", "MedicationRequest", "CarePlan", "Claim",
    "ExplanationOfBenefit", "AllergyIntolerance", "Location", "PractitionerRole", "Media",
    "Specimen", "AuditEvent",
]  # fmt: skip
SKIPPED_COMMON = {"_id", "_lastUpdated", "_text", "_content", "_query", "phonetic"}

EXTRA = {
    "Task": [
        ("focus", "reference", "Task.focus"),
        ("status", "token", "Task.status"),
        ("business-status", "token", "Task.businessStatus"),
        ("code", "token", "Task.code"),
        ("intent", "token", "Task.intent"),
        ("priority", "token", "Task.priority"),
        ("identifier", "token", "Task.identifier"),
        ("patient", "reference", "Task.for.where(resolve() is Patient)"),
        ("subject", "reference", "Task.for"),
        ("owner", "reference", "Task.owner"),
        ("requester", "reference", "Task.requester"),
        ("based-on", "reference", "Task.basedOn"),
        ("part-of", "reference", "Task.partOf"),
        ("authored-on", "date", "Task.authoredOn"),
        ("modified", "date", "Task.lastModified"),
    ],
    "Provenance": [
        ("target", "reference", "Provenance.target"),
        ("patient", "reference", "Provenance.target.where(resolve() is Patient)"),
        ("agent", "reference", "Provenance.agent.who"),
        ("agent-type", "token", "Provenance.agent.type"),
        ("entity", "reference", "Provenance.entity.what"),
        ("location", "reference", "Provenance.location"),
        ("recorded", "date", "Provenance.recorded"),
        ("when", "date", "(Provenance.occurred as dateTime)"),
    ],
    "Practitioner": [
        ("identifier", "token", "Practitioner.identifier"),
        ("name", "string", "Practitioner.name"),
        ("active", "token", "Practitioner.active"),
    ],
    "Organization": [
        ("identifier", "token", "Organization.identifier"),
        ("name", "string", "Organization.name | Organization.alias"),
        ("active", "token", "Organization.active"),
        ("type", "token", "Organization.type"),
        ("partof", "reference", "Organization.partOf"),
        ("address", "string", "Organization.address"),
        ("address-city", "string", "Organization.address.city"),
    ],
    "Device": [
        ("identifier", "token", "Device.identifier"),
        ("patient", "reference", "Device.patient"),
        ("organization", "reference", "Device.owner"),
        ("type", "token", "Device.type"),
        ("status", "token", "Device.status"),
        ("model", "string", "Device.modelNumber"),
        ("manufacturer", "string", "Device.manufacturer"),
        ("device-name", "string", "Device.deviceName.name"),
        ("url", "uri", "Device.url"),
    ],
    "ImagingStudy": [("identifier", "token", "ImagingStudy.identifier")],
    "Encounter": [
        ("status", "token", "Encounter.status"),
        ("class", "token", "Encounter.class"),
        ("subject", "reference", "Encounter.subject"),
        ("participant", "reference", "Encounter.participant.individual"),
        ("service-provider", "reference", "Encounter.serviceProvider"),
    ],
    "Immunization": [
        ("status", "token", "Immunization.status"),
        ("vaccine-code", "token", "Immunization.vaccineCode"),
    ],
    "Procedure": [
        ("status", "token", "Procedure.status"),
        ("subject", "reference", "Procedure.subject"),
        ("performer", "reference", "Procedure.performer.actor"),
    ],
    "MedicationRequest": [
        ("status", "token", "MedicationRequest.status"),
        ("intent", "token", "MedicationRequest.intent"),
        ("authoredon", "date", "MedicationRequest.authoredOn"),
        ("subject", "reference", "MedicationRequest.subject"),
    ],
    "CarePlan": [
        ("status", "token", "CarePlan.status"),
        ("category", "token", "CarePlan.category"),
        ("subject", "reference", "CarePlan.subject"),
        ("performer", "reference", "CarePlan.activity.detail.performer"),
    ],
    "Claim": [
        ("patient", "reference", "Claim.patient"),
        ("identifier", "token", "Claim.identifier"),
        ("created", "date", "Claim.created"),
        ("status", "token", "Claim.status"),
        ("use", "token", "Claim.use"),
        ("provider", "reference", "Claim.provider"),
        ("payee", "reference", "Claim.payee.party"),
    ],
    "ExplanationOfBenefit": [
        ("patient", "reference", "ExplanationOfBenefit.patient"),
        ("identifier", "token", "ExplanationOfBenefit.identifier"),
        ("created", "date", "ExplanationOfBenefit.created"),
        ("status", "token", "ExplanationOfBenefit.status"),
        ("claim", "reference", "ExplanationOfBenefit.claim"),
        ("payee", "reference", "ExplanationOfBenefit.payee.party"),
    ],
    "AllergyIntolerance": [
        ("clinical-status", "token", "AllergyIntolerance.clinicalStatus"),
        ("verification-status", "token", "AllergyIntolerance.verificationStatus"),
        ("category", "token", "AllergyIntolerance.category"),
        ("recorder", "reference", "AllergyIntolerance.recorder"),
        ("asserter", "reference", "AllergyIntolerance.asserter"),
    ],
    "Location": [
        ("identifier", "token", "Location.identifier"),
        ("name", "string", "Location.name | Location.alias"),
        ("status", "token", "Location.status"),
        ("address", "string", "Location.address"),
        ("organization", "reference", "Location.managingOrganization"),
    ],
    "PractitionerRole": [
        ("identifier", "token", "PractitionerRole.identifier"),
        ("practitioner", "reference", "PractitionerRole.practitioner"),
        ("organization", "reference", "PractitionerRole.organization"),
        ("role", "token", "PractitionerRole.code"),
        ("specialty", "token", "PractitionerRole.specialty"),
    ],
    "AuditEvent": [
        ("date", "date", "AuditEvent.recorded"),
        ("type", "token", "AuditEvent.type"),
        ("subtype", "token", "AuditEvent.subtype"),
        ("action", "token", "AuditEvent.action"),
        ("outcome", "token", "AuditEvent.outcome"),
        ("agent", "reference", "AuditEvent.agent.who"),
        ("altid", "token", "AuditEvent.agent.altId"),
        ("address", "string", "AuditEvent.agent.network.address"),
        ("entity", "reference", "AuditEvent.entity.what"),
        ("patient", "reference", "AuditEvent.entity.what.where(resolve() is Patient)"),
        ("source", "reference", "AuditEvent.source.observer"),
    ],
    "Specimen": [
        ("identifier", "token", "Specimen.identifier"),
        ("patient", "reference", "Specimen.subject.where(resolve() is Patient)"),
        ("subject", "reference", "Specimen.subject"),
        ("type", "token", "Specimen.type"),
        ("collected", "date", "Specimen.collection.collected"),
    ],
}


def _parts_for(expression: str, base: str) -> str:
    parts = [p.strip() for p in expression.split(" | ")]
    mine = [p for p in parts if p.startswith((f"{base}.", f"({base}.", "Resource."))]
    return " | ".join(p.replace("Resource.", f"{base}.", 1) for p in mine)


def build(shared: Path) -> dict[str, object]:
    bundle = json.loads((shared / SUBSET).read_text())
    params: dict[str, dict[str, dict[str, object]]] = {t: {} for t in REGISTERED}
    for entry in bundle["entry"]:
        sp = entry["resource"]
        if sp["type"] not in SUPPORTED_TYPES or sp["code"] in SKIPPED_COMMON:
            continue
        bases = REGISTERED if sp["base"] in (["Resource"], ["DomainResource"]) else sp["base"]
        for base in bases:
            if base not in params or (base == "Binary" and sp["code"] != "_tag"):
                continue
            expression = _parts_for(sp.get("expression", ""), base)
            if not expression or "exists()" in expression:
                continue
            params[base][sp["code"]] = {"type": sp["type"], "expression": expression}
    for base, extra in EXTRA.items():
        for code, kind, expression in extra:
            params[base].setdefault(code, {"type": kind, "expression": expression})
    return {
        "description": (
            "Search parameters of FHIR R4 4.0.1, generated by scripts/build_search_parameters.py "
            "from the official SearchParameter definitions (hl7.fhir.r4.examples 4.0.1, CC0-1.0) "
            "and the R4 search pages for types that subset lacks."
        ),
        "resources": {t: dict(sorted(p.items())) for t, p in params.items()},
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "fhir_ai/fhir/search/search_parameters.json"
    out.write_text(json.dumps(build(Path(sys.argv[1])), indent=1) + "\n")
