"""The contract of an AI imaging result as stored: how the workers write it, how CDS reads it.

An AI imaging result is a DiagnosticReport that

- carries the security label ``v3-ObservationValue#AIAST`` ("artificial intelligence
  asserted") in ``meta.security``, and is ``preliminary`` until a radiologist reviews it;
- has ``subject`` (the Patient), ``imagingStudy``, ``effectiveDateTime`` (the study time),
  and a ``code`` naming the imaging procedure (the ordered ServiceRequest's code);
- has one ``result`` Observation per finding, with the finding's ``code`` (SNOMED CT),
  ``valueQuantity`` = calibrated probability (unit ``1``), ``interpretation``
  ``v3-ObservationInterpretation`` ``POS``/``NEG``/``IND`` (from the model's decision
  threshold), ``device.display`` = ``<model name> <version>`` and ``note`` = the model
  card's limitations.

Analyses still running are Tasks with ``code`` :data:`IMAGING_ANALYSIS` and status
``requested`` or ``in-progress``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_ai.fhir.search.dates import parse_moment

AI_ASSERTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "AIAST")
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
JOB_TYPES = "https://fhir-ai.org/fhir/CodeSystem/job-type"
IMAGING_ANALYSIS = (JOB_TYPES, "imaging-analysis")


def ai_asserted_meta() -> dict[str, Any]:
    """The ``meta`` of a resource this server's AI wrote: the AIAST security label."""
    return {"security": [{"system": AI_ASSERTED[0], "code": AI_ASSERTED[1]}]}


def is_ai_asserted(resource: dict[str, Any]) -> bool:
    """True if ``resource`` carries the AIAST security label."""
    return any(
        (label.get("system"), label.get("code")) == AI_ASSERTED
        for label in resource.get("meta", {}).get("security", [])
    )


@dataclass(frozen=True, slots=True)
class AiFinding:
    """One finding of an AI imaging report."""

    system: str
    code: str
    display: str
    probability: float | None
    interpretation: str  # POS, NEG or IND
    model: str
    limitations: str | None


@dataclass(frozen=True, slots=True)
class AiImagingReport:
    """An AI imaging DiagnosticReport with its findings."""

    id: str
    status: str
    effective: datetime | None
    codings: frozenset[tuple[str, str]]
    title: str
    findings: tuple[AiFinding, ...]

    @property
    def positive(self) -> tuple[AiFinding, ...]:
        """The findings the model called positive."""
        return tuple(f for f in self.findings if f.interpretation == "POS")


def read_report(report: dict[str, Any], observations: dict[str, dict[str, Any]]) -> AiImagingReport:
    """Read a stored report; ``observations`` maps ``Observation/<id>`` to the resource."""
    findings = tuple(
        _finding(observations[ref["reference"]])
        for ref in report.get("result", [])
        if isinstance(ref, dict) and ref.get("reference") in observations
    )
    code = report.get("code", {})
    codings = frozenset(
        (c["system"], c["code"]) for c in code.get("coding", []) if "system" in c and "code" in c
    )
    return AiImagingReport(
        id=report["id"],
        status=report.get("status", "unknown"),
        effective=parse_moment(report.get("effectiveDateTime")),
        codings=codings,
        title=code.get("text") or _first_display(code) or "imaging study",
        findings=findings,
    )


def _finding(observation: dict[str, Any]) -> AiFinding:
    code = observation.get("code", {})
    coding: dict[str, Any] = next(iter(code.get("coding", [])), {})
    interpretation = next(
        (
            c.get("code", "IND")
            for concept in observation.get("interpretation", [])
            for c in concept.get("coding", [])
            if c.get("system") == INTERPRETATION
        ),
        "IND",
    )
    value = observation.get("valueQuantity", {}).get("value")
    notes = [n["text"] for n in observation.get("note", []) if n.get("text")]
    return AiFinding(
        system=coding.get("system", ""),
        code=coding.get("code", ""),
        display=code.get("text") or coding.get("display") or coding.get("code", "finding"),
        probability=float(value) if isinstance(value, int | float) else None,
        interpretation=interpretation,
        model=observation.get("device", {}).get("display", "fhir-ai model"),
        limitations=" ".join(notes) or None,
    )


def _first_display(code: dict[str, Any]) -> str | None:
    return next((c["display"] for c in code.get("coding", []) if c.get("display")), None)
