"""Port and store adapter: the AI results CDS services render (they never wait for AI work)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fhir_ai.fhir.ai_results import AI_ASSERTED, IMAGING_ANALYSIS, AiImagingReport, read_report
from fhir_ai.fhir.nlp_results import NLP_FINDING, NoteFinding, read_finding
from fhir_ai.fhir.service import FhirService
from fhir_ai.store.repository import ResourceStore


class AiResultsReader(Protocol):
    """Read-only access to stored AI results of a patient."""

    def recent_imaging_reports(
        self, patient_id: str, since: datetime, limit: int
    ) -> list[AiImagingReport]:
        """Up to ``limit`` AI imaging reports of studies at or after ``since``, newest first."""
        ...

    def running_imaging_analyses(self, patient_id: str) -> int:
        """How many imaging analyses of the patient are requested or in progress."""
        ...

    def recent_note_findings(
        self, patient_id: str, since: datetime, limit: int
    ) -> list[NoteFinding]:
        """Up to ``limit`` concept mentions from notes dated at or after ``since``."""
        ...


class StoreResultsReader:
    """:class:`AiResultsReader` over this server's FHIR store (indexed searches)."""

    def __init__(self, store: ResourceStore, service: FhirService) -> None:
        self.store = store
        self.service = service

    def recent_imaging_reports(
        self, patient_id: str, since: datetime, limit: int
    ) -> list[AiImagingReport]:
        """Search ``DiagnosticReport?patient&_security=AIAST&date=ge`` with results included."""
        params = [
            ("patient", f"Patient/{patient_id}"),
            ("_security", "|".join(AI_ASSERTED)),
            ("date", "ge" + since.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("_include", "DiagnosticReport:result"),
            ("_sort", "-date"),
            ("_count", str(limit)),
        ]
        query = self.service.parse_search("DiagnosticReport", params, strict=True)
        with self.store.session(read_only=True) as session:
            result = session.search(query, "")
        observations = {
            f"Observation/{r.id}": r.content
            for r in result.included
            if r.resource_type == "Observation" and r.content is not None
        }
        return [read_report(m.content, observations) for m in result.matches if m.content]

    def running_imaging_analyses(self, patient_id: str) -> int:
        """Count the patient's imaging-analysis Tasks that have not ended."""
        params = [
            ("patient", f"Patient/{patient_id}"),
            ("code", "|".join(IMAGING_ANALYSIS)),
            ("status", "requested,accepted,in-progress"),
            ("_summary", "count"),
        ]
        query = self.service.parse_search("Task", params, strict=True)
        with self.store.session(read_only=True) as session:
            return session.search(query, "").total or 0

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
