"""Jobs as FHIR Tasks: submitted once per key, moved through their states."""

from __future__ import annotations

import pytest

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.jobs.service import JobService
from fhir_ai.jobs.task_resource import parameter
from tests.unit.jobs.conftest import REQUEST, RecordingQueue, complete


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
    complete(jobs, task_id, ["DiagnosticReport/r1"])
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
