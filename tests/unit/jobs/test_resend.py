"""Re-sending Tasks that are requested but not on the queue."""

from __future__ import annotations

import pytest

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.jobs.resend import resend_pending
from fhir_ai.jobs.service import JobService
from tests.unit.jobs.conftest import REQUEST, RecordingQueue


def test_unqueued_tasks_are_sent_again_once(jobs: JobService, queue: RecordingQueue) -> None:
    queue.down = True
    with pytest.raises(ServiceUnavailable):  # the Task waits, marked not queued
        jobs.submit(REQUEST)
    assert resend_pending(jobs, None).broker_down  # still down: nothing sent, Task kept
    queue.down = False
    report = resend_pending(jobs, None)
    assert (report.sent, report.broker_down) == (1, False)
    assert len(queue.sent) == 1 and queue.sent[0][0] == "workers.imaging.analyze_study"
    assert "businessStatus" not in jobs.task(queue.sent[0][1][0])
    assert resend_pending(jobs, None).sent == 0  # queued now: not sent twice


def test_stale_requested_tasks_are_sent_again(jobs: JobService, queue: RecordingQueue) -> None:
    task_id = jobs.submit(REQUEST).task_id
    assert resend_pending(jobs, stale_after_s=3600).sent == 0  # fresh: its message is queued
    assert resend_pending(jobs, stale_after_s=0).sent == 1  # "lost": requested too long
    jobs.start(task_id, "w")
    assert resend_pending(jobs, stale_after_s=0).sent == 0  # running: never re-sent
    assert len(queue.sent) == 2
