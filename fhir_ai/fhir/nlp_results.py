"""The contract of a finding extracted from a clinical note, as stored and as read by CDS.

Each mention of a concept in a note is an Observation that

- carries ``meta.security`` ``v3-ObservationValue#AIAST`` and the category
  :data:`NLP_FINDING`;
- has ``code`` = the concept (SNOMED CT and ICD-10-CM codings), ``subject`` (the Patient),
  ``effectiveDateTime`` (the note's date) and ``derivedFrom`` (the DocumentReference);
- has ``valueCodeableConcept`` = the assertion in :data:`ASSERTION`: ``present``,
  ``absent`` or ``possible``;
- has one ``component`` per ConText flag (:data:`ASSERTION` ``historical``,
  ``hypothetical``, ``family``) with ``valueBoolean``;
- has ``note[0].text`` = the evidence sentence (character offsets live in the extraction
  DiagnosticReport's Observations as extensions; the card needs only the sentence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_ai.fhir.search.dates import parse_moment

CODE_SYSTEMS = "https://fhir-ai.org/fhir/CodeSystem"
NLP_FINDING = (f"{CODE_SYSTEMS}/observation-category", "nlp-finding")
ASSERTION = f"{CODE_SYSTEMS}/assertion"
FLAGS = ("historical", "hypothetical", "family")


@dataclass(frozen=True, slots=True)
class NoteFinding:
    """One concept mention in a note, with its ConText assertion."""

    codings: frozenset[tuple[str, str]]
    display: str
    coding: dict[str, str]
    assertion: str
    historical: bool
    hypothetical: bool
    family: bool
    sentence: str | None
    document: str | None
    noted: datetime | None

    @property
    def affirmed(self) -> bool:
        """Present for the patient: not negated, possible, hypothetical or a relative's."""
        return self.assertion == "present" and not self.hypothetical and not self.family


def read_finding(observation: dict[str, Any]) -> NoteFinding:
    """Read a stored NLP finding Observation."""
    code = observation.get("code", {})
    codings = [c for c in code.get("coding", []) if "system" in c and "code" in c]
    flags = {
        c.get("code"): component.get("valueBoolean") is True
        for component in observation.get("component", [])
        for c in component.get("code", {}).get("coding", [])
        if c.get("system") == ASSERTION
    }
    value = observation.get("valueCodeableConcept", {})
    assertion = next(
        (c.get("code") for c in value.get("coding", []) if c.get("system") == ASSERTION), "possible"
    )
    notes = [n.get("text") for n in observation.get("note", []) if n.get("text")]
    document = next(
        (r.get("reference") for r in observation.get("derivedFrom", []) if r.get("reference")),
        None,
    )
    first = codings[0] if codings else {}
    return NoteFinding(
        codings=frozenset((c["system"], c["code"]) for c in codings),
        display=code.get("text") or first.get("display") or first.get("code", "finding"),
        coding={k: first[k] for k in ("system", "code", "display") if k in first},
        assertion=str(assertion),
        historical=flags.get("historical", False),
        hypothetical=flags.get("hypothetical", False),
        family=flags.get("family", False),
        sentence=notes[0] if notes else None,
        document=document,
        noted=parse_moment(observation.get("effectiveDateTime")),
    )
