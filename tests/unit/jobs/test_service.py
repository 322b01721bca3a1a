"""Jobs as FHIR Tasks: submitted once per key, moved through their states."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.jobs.service import JobService
from fhir_ai.jobs.task_resource import JobRequest, parameter
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


def test_submit_creates_a_requested_task_and_queues_it(
    jobs: JobService, queue: RecordingQueue
) -> None:
    submitted = jobs.submit(REQUEST)
    assert submitted.queued and submitted.status == "requested"
    assert queue.sent == [("workers.imaging.analyze_study", [submitted.task_id])]
    task = jobs.task(submitted.task_id)
    assert task["status"] == "requested" and task["focus"] == {"reference": "ImagingStudy/s1"}
    assert task["for"] == {"reference": "Patient/p1"}
    assert parameter(task, "model") == "pneumonia-cxr"


def test_the_same_key_is_one_task(jobs: JobService, queue: RecordingQueue) -> None:
    first = jobs.submit(REQUEST)
    second = jobs.submit(REQUEST)
    assert second.task_id == first.task_id and not second.queued
    assert len(queue.sent) == 1


def test_lifecycle_and_redelivery(jobs: JobService) -> None:
    task_id = jobs.submit(REQUEST).task_id
    assert jobs.start(task_id, "worker-1") is not None
    assert jobs.task(task_id)["status"] == "in-progress"
    jobs.complete(task_id, ["DiagnosticReport/r1"])
    task = jobs.task(task_id)
    assert task["status"] == "completed"
    assert task["output"][0]["valueReference"] == {"reference": "DiagnosticReport/r1"}
    assert jobs.start(task_id, "worker-2") is None  # a redelivered job does nothing


def test_failure_is_recorded_and_a_resubmission_queues_again(
    jobs: JobService, queue: RecordingQueue
) -> None:
    task_id = jobs.submit(REQUEST).task_id
    jobs.start(task_id, "w")
    jobs.fail(task_id, "No routed image could be decoded", "invalid")
    task = jobs.task(task_id)
    assert task["status"] == "failed"
    assert task["statusReason"]["text"] == "No routed image could be decoded"
    assert task["contained"][0]["issue"][0]["code"] == "invalid"
    again = jobs.submit(REQUEST)
    assert again.task_id == task_id and again.queued
    assert jobs.task(task_id)["status"] == "requested" and "contained" not in jobs.task(task_id)
    assert len(queue.sent) == 2


def test_a_broker_outage_keeps_the_task_requested(jobs: JobService, queue: RecordingQueue) -> None:
    queue.down = True
    with pytest.raises(ServiceUnavailable):
        jobs.submit(REQUEST)
    queue.down = False
    retry = jobs.submit(REQUEST)  # the Task waited, marked not queued: now it is queued
    assert retry.queued and queue.sent == [("workers.imaging.analyze_study", [retry.task_id])]
    assert "businessStatus" not in jobs.task(retry.task_id)
    assert not jobs.submit(REQUEST).queued
