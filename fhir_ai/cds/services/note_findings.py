"""``note-findings``: problems affirmed in the patient's notes but missing from the problem list."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fhir_ai.cds.models import CdsResponse
from fhir_ai.cds.service import HookCall, utc_now
from fhir_ai.cds.services.results import AiResultsReader
from fhir_ai.recommend.conditions import problem_list_codes
from fhir_ai.recommend.problem_list import missing_problems, problems_card

MAX_FINDINGS = 500


@dataclass
class NoteFindingsService:
    """One card suggesting Conditions for affirmed problems the problem list lacks."""

    reader: AiResultsReader
    window: timedelta
    clock: Callable[[], datetime] = utc_now
    id: str = "note-findings"
    hooks: tuple[str, ...] = ("patient-view", "encounter-discharge")
    title: str = "Problems found in clinical notes"
    description: str = (
        "Lists problems that the patient's recent notes affirm (not negated, hypothetical, "
        "uncertain or about a relative) and that are missing from the problem list, with the "
        "sentence that shows each, as suggestions to add a Condition."
    )
    prefetch: Mapping[str, str] = field(
        default_factory=lambda: {"conditions": "Condition?patient={{context.patientId}}"}
    )
    required_prefetch: frozenset[str] = frozenset({"conditions"})
    usage_requirements: str | None = (
        "Notes must have been sent to this server (DocumentReference) for extraction."
    )
    version: str = "note-findings/1"

    def evaluate(self, call: HookCall) -> CdsResponse:
        """No card when the problem list already has every affirmed problem."""
        problems = problem_list_codes(call.prefetch.get("conditions"))
        if problems is None:
            problems = frozenset()  # prefetch was known-empty: the list has no problems
        patient = call.context.patientId
        findings = self.reader.recent_note_findings(
            patient, self.clock() - self.window, MAX_FINDINGS
        )
        missing = missing_problems(findings, problems)
        return CdsResponse(cards=[problems_card(missing, patient)] if missing else [])
