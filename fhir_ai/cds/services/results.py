"""Port and store adapter: the AI results CDS services render (they never wait for AI work)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine

from fhir_ai.fhir.ai_results import AI_ASSERTED, AiImagingReport, read_report
from fhir_ai.fhir.nlp_results import NLP_FINDING, NoteFinding, read_finding
from fhir_ai.fhir.service import FhirService
from fhir_ai.store.ai_results import ImagingResultsQuery
from fhir_ai.store.repository import ResourceStore


@dataclass(frozen=True, slots=True)
class PatientImaging:
    """A patient's recent AI imaging reports (newest first) and running analyses."""

    reports: list[AiImagingReport]
    running: int


class AiResultsReader(Protocol):
    """Read-only access to stored AI results of a patient."""

    def imaging(self, patient_id: str, since: datetime, limit: int) -> PatientImaging:
        """Up to ``limit`` AI imaging reports of studies at or after ``since``, newest
        first, and how many imaging analyses are requested or in progress."""
        ...

    def recent_note_findings(
        self, patient_id: str, since: datetime, limit: int
    ) -> list[NoteFinding]:
        """Up to ``limit`` concept mentions from notes dated at or after ``since``."""
        ...


class StoreResultsReader:
    """:class:`AiResultsReader` over this server's FHIR store (indexed searches)."""

    def __init__(
        self, store: ResourceStore, service: FhirService, fixed_reads: Engine | None = None
    ) -> None:
        self.store = store
        self.service = service
        #: The fixed-shape read, on its engine (see ``create_fixed_read_engine``).
        self.imaging_query = ImagingResultsQuery(fixed_reads or store.engine)

    def imaging(self, patient_id: str, since: datetime, limit: int) -> PatientImaging:
        """One fixed-shape statement (:mod:`fhir_ai.store.ai_results`), one snapshot:
        what ``DiagnosticReport?patient&_security=AIAST&date=ge&_include=result&_sort=-date``
        and a ``Task?patient&code&status&_summary=count`` would find."""
        rows = self.imaging_query.read(patient_id, since, limit)
        return PatientImaging(
            [read_report(report, rows.observations) for report in rows.reports], rows.running
        )

    def recent_note_findings(
        self, patient_id: str, since: datetime, limit: int
    ) -> list[NoteFinding]:
        """Search ``Observation?patient&category=nlp-finding&date=ge``, newest first."""
        params = [
            ("patient", f"Patient/{patient_id}"),
            ("category", "|".join(NLP_FINDING)),
            ("_security", "|".join(AI_ASSERTED)),
            ("date", "ge" + since.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("_sort", "-date"),
            ("_count", str(limit)),
        ]
        query = self.service.parse_search("Observation", params, strict=True)
        with self.store.session(read_only=True) as session:
            result = session.search(query, "")
        return [read_finding(m.content) for m in result.matches if m.content]
