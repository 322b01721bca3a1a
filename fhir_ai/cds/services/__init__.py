"""The product's CDS services, in discovery order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fhir_ai.cds.service import CdsService
from fhir_ai.cds.services.imaging_findings import ImagingFindingsService
from fhir_ai.cds.services.imaging_order_advisor import ImagingOrderAdvisor
from fhir_ai.cds.services.note_findings import NoteFindingsService
from fhir_ai.cds.services.results import AiResultsReader
from fhir_ai.reports.links import ReportLinks
from fhir_ai.settings import Settings


def default_services(
    reader: AiResultsReader,
    settings: Settings,
    queue_up: Callable[[], bool] = lambda: True,
    links: ReportLinks | None = None,
) -> list[CdsService]:
    """The services registered when the app is built without an explicit list;
    ``queue_up`` tells whether the job queue answers (pending analyses are delayed if not),
    ``links`` signs the cards' links to the report view."""
    window = timedelta(days=settings.cds_result_window_days)
    return [
        ImagingFindingsService(reader, window, queue_up=queue_up, links=links),
        ImagingOrderAdvisor(reader, window, links=links),
        NoteFindingsService(reader, window),
    ]
