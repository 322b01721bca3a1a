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

Extensions written by the NLP pipeline (:mod:`fhir_ai.nlp.fhir_builder`):

- :data:`EVIDENCE` on each Observation: sub-extensions ``start``/``end`` (character offsets of
  the mention in the analysed text), ``text`` (the words matched), ``sentenceStart`` (offset of
  the sentence in ``note[0]``), ``section`` (the note section's category, when known);
- an optional component :data:`SIZE_MM` (``valueQuantity`` in mm) for nodules and masses;
- :data:`DERIVED_FROM` on the extraction DiagnosticReport: the versioned source document
  (R4 DiagnosticReport has no ``derivedFrom``; the Provenance names it too).

The report's ``code`` is :data:`NOTE_EXTRACTION`; its and the Observations' ``identifier``
(system :data:`EXTRACTION_IDS`) are derived from the document id and version, the pipeline
version and the mention's offsets, so that a re-run creates nothing new.
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
NLP_CODES = f"{CODE_SYSTEMS}/nlp"
NLP_CONCEPTS = f"{CODE_SYSTEMS}/nlp-concept"
NOTE_EXTRACTION = (NLP_CODES, "note-extraction")
NLP_PIPELINE = (NLP_CODES, "nlp-pipeline")
SIZE_MM = (NLP_CODES, "size-mm")
STRUCTURE = "https://fhir-ai.org/fhir/StructureDefinition"
EVIDENCE = f"{STRUCTURE}/nlp-evidence"
DERIVED_FROM = f"{STRUCTURE}/derived-from"
EXTRACTION_IDS = "https://fhir-ai.org/fhir/sid/nlp-extraction"
PIPELINE_IDS = "https://fhir-ai.org/fhir/sid/nlp-pipeline"


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
