"""``imaging-ai-findings``: the patient's recent AI imaging results, on patient-view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fhir_ai.cds.models import CdsResponse
from fhir_ai.cds.service import HookCall, utc_now
from fhir_ai.cds.services.results import AiResultsReader
from fhir_ai.recommend.conditions import problem_list_codes
from fhir_ai.recommend.imaging_cards import pending_card, report_card
from fhir_ai.reports.links import ReportLinks, open_report_url


@dataclass
class ImagingFindingsService:
    """One card per recent AI imaging report (the newest ``max_cards``, against alert
    fatigue), plus one while analyses are running."""

    reader: AiResultsReader
    window: timedelta
    max_cards: int = 5
    clock: Callable[[], datetime] = utc_now
    id: str = "imaging-ai-findings"
    hooks: tuple[str, ...] = ("patient-view", "encounter-start")
    title: str = "AI imaging findings"
    description: str = (
        "Shows the patient's recent AI analyses of imaging studies (chest X-ray pneumonia, "
        "breast ultrasound), with the model and its limitations, and offers positive findings "
        "that are not on the problem list as provisional problems."
    )
    prefetch: Mapping[str, str] = field(
        default_factory=lambda: {"conditions": "Condition?patient={{context.patientId}}"}
    )
    required_prefetch: frozenset[str] = frozenset()
    usage_requirements: str | None = (
        "Imaging studies must have been sent to this server (DICOMweb STOW-RS) for analysis."
    )
    version: str = "imaging-ai-findings/1"
    #: Whether the job queue answers; asked only when analyses are pending.
    queue_up: Callable[[], bool] = lambda: True
    #: Signs the cards' links to the report view (None: links name the FHIR resource).
    links: ReportLinks | None = None

    def evaluate(self, call: HookCall) -> CdsResponse:
        """Cards for the reports of the last ``window``, newest first."""
        patient = call.context.patientId
        problems = problem_list_codes(call.prefetch.get("conditions"))
        since = self.clock() - self.window
        imaging = self.reader.imaging(patient, since, self.max_cards)
        cards = [
            report_card(
                r,
                patient,
                call.base_url,
                problems,
                open_report_url(self.links, call.base_url, r.id),
            )
            for r in imaging.reports
            if r.findings
        ]
        if imaging.running:
            cards.append(pending_card(imaging.running, delayed=not self.queue_up()))
        return CdsResponse(cards=cards)
