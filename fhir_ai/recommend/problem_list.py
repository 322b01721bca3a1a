"""Problems affirmed in notes that the problem list lacks, as Condition suggestions."""

from __future__ import annotations

from collections.abc import Iterable

from fhir_ai.cds.models import (
    SUMMARY_MAX_CHARS,
    Card,
    Indicator,
    SelectionBehavior,
    Source,
    Suggestion,
)
from fhir_ai.fhir.nlp_results import NoteFinding
from fhir_ai.recommend.conditions import add_problem
from fhir_ai.recommend.markdown import escape

SOURCE = Source(label="fhir-ai clinical notes NLP")
MAX_SUGGESTIONS = 10


def missing_problems(
    findings: Iterable[NoteFinding], problem_codes: frozenset[tuple[str, str]]
) -> list[NoteFinding]:
    """Affirmed findings none of whose codings is on the problem list, newest per concept.

    Negated, possible, hypothetical and family-history mentions are never suggested; a
    concept also denied or doubted in a later note is left out.
    """
    newest: dict[frozenset[tuple[str, str]], NoteFinding] = {}
    for finding in findings:  # newest first
        if finding.codings and finding.codings not in newest:
            newest[finding.codings] = finding
    return [
        f for f in newest.values() if f.affirmed and f.coding and not (f.codings & problem_codes)
    ][:MAX_SUGGESTIONS]


def problems_card(missing: list[NoteFinding], patient_id: str) -> Card:
    """One card suggesting each missing problem, with the sentence that shows it."""
    names = ", ".join(f.display for f in missing)
    noun = "problem" if len(missing) == 1 else "problems"
    summary = f"Notes mention {len(missing)} {noun} not on the problem list: {names}"
    if len(summary) > SUMMARY_MAX_CHARS:
        summary = summary[: SUMMARY_MAX_CHARS - 1].rstrip(", ") + "…"
    evidence = "\n".join(
        f"- **{escape(f.display)}**"
        + (f" ({f.noted.date().isoformat()})" if f.noted else "")
        + (f": “{escape(f.sentence)}”" if f.sentence else "")
        for f in missing
    )
    return Card(
        summary=summary,
        indicator=Indicator.INFO,
        detail="Found by NLP in the patient's notes; check before adding.\n\n" + evidence,
        source=SOURCE,
        suggestions=[_add_condition(f, patient_id) for f in missing],
        selectionBehavior=SelectionBehavior.ANY,
    )


def _add_condition(finding: NoteFinding, patient_id: str) -> Suggestion:
    return add_problem(
        label=f"Add to problem list: {finding.display}",
        description=f"Add {finding.display} to the problem list (unconfirmed)",
        coding=finding.coding,
        display=finding.display,
        patient_id=patient_id,
        verification="unconfirmed",
        evidence=finding.document,
    )
