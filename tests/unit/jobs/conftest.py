"""Fixtures of the job tests: an in-memory queue and a JobService on SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.fhir.transaction import BundleProcessor, written_references
from fhir_ai.jobs.completion import JobResults, completing
from fhir_ai.jobs.service import JobService
from fhir_ai.jobs.task_resource import JobRequest
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.repository import ResourceStore
from tests.conftest import make_settings


class RecordingQueue:
    """An in-memory JobQueue: records what was sent; can be made unavailable."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.down = False

    def send(self, task_name: str, args: Sequence[str], task_id: str | None = None) -> None:
        if self.down:
            raise ServiceUnavailable("down")
        self.sent.append((task_name, list(args)))

    def call(self, task_name: str, args: Sequence[Any], timeout_s: float) -> Any:
        raise NotImplementedError


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def jobs(tmp_path: Path, queue: RecordingQueue) -> JobService:
    settings = make_settings(tmp_path)
    engine = create_db_engine(settings)
    upgrade_schema(engine)
    registry = SearchRegistry.load()
    return JobService(ResourceStore(engine, registry), FhirService(registry, settings), queue)


REQUEST = JobRequest(
    job_type="imaging-analysis",
    task_name="workers.imaging.analyze_study",
    focus="ImagingStudy/s1",
    key="imaging-analysis/1.2.3/pneumonia-cxr@1.0.0+build 7&x=y",  # characters a query escapes
    subject="Patient/p1",
    parameters=(("model", "pneumonia-cxr"),),
)


BASE = "http://localhost/fhir"


def write_transaction(jobs: JobService, bundle: dict[str, Any]) -> list[str]:
    """Process a transaction Bundle as a worker's write does; the ``Type/id`` of each entry."""
    processor = BundleProcessor(jobs.fhir, jobs.store)
    return written_references(processor.process(bundle, BASE, with_resources=False))


def complete(jobs: JobService, task_id: str, outputs: list[str]) -> None:
    """Complete a started Task with ``outputs`` as a worker does, then tell the listeners."""
    write_transaction(jobs, completing(JobResults(outputs=tuple(outputs)), jobs.task(task_id)))
    jobs.notify_completed(task_id)
