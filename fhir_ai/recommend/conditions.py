"""The patient's problem list as read from prefetch, and suggestions to add to it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_ai.cds.models import SUMMARY_MAX_CHARS, Action, ActionType, Suggestion

CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def problem_list_codes(conditions: object) -> frozenset[tuple[str, str]] | None:
    """Codings of the patient's Conditions from a prefetched searchset (None if unknown)."""
    if not isinstance(conditions, dict) or conditions.get("resourceType") != "Bundle":
        return None
    codes: set[tuple[str, str]] = set()
    for entry in conditions.get("entry", []):
        resource = entry.get("resource", {}) if isinstance(entry, dict) else {}
        if resource.get("resourceType") != "Condition" or _refuted(resource):
            continue
        codes.update(_codings(resource.get("code", {}).get("coding", [])))
    return frozenset(codes)


def add_problem(
    *,
    label: str,
    description: str,
    coding: dict[str, str],
    display: str,
    patient_id: str,
    verification: str,
    evidence: str | None,
) -> Suggestion:
    """A suggestion creating an active problem-list Condition with this verification status."""
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": concept(CLINICAL_STATUS, "active"),
        "verificationStatus": concept(VERIFICATION_STATUS, verification),
        "category": [concept(CATEGORY, "problem-list-item")],
        "code": {"coding": [coding], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if evidence:
        condition["evidence"] = [{"detail": [{"reference": evidence}]}]
    return Suggestion(
        label=label[:SUMMARY_MAX_CHARS],
        actions=[Action(type=ActionType.CREATE, description=description, resource=condition)],
    )


def concept(system: str, code: str) -> dict[str, object]:
    """A CodeableConcept with one coding."""
    return {"coding": [{"system": system, "code": code}]}


def _refuted(condition: dict[str, object]) -> bool:
    status = condition.get("verificationStatus")
    codings = status.get("coding", []) if isinstance(status, dict) else []
    return any(c.get("code") in ("refuted", "entered-in-error") for c in codings)


def _codings(codings: Iterable[dict[str, str]]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in codings if "system" in c and "code" in c}
