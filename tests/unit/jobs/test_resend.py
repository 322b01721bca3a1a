"""Re-sending Tasks that are requested but not on the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.jobs.resend import resend_follow_ups, resend_pending
from fhir_ai.jobs.routing import DELIVER_NOTIFICATION
from fhir_ai.jobs.service import JobService
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.repository import ResourceStore
from fhir_ai.subscriptions.listeners import ResultListeners
from tests.conftest import make_settings
from tests.unit.jobs.conftest import REQUEST, RecordingQueue, complete


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


def test_follow_ups_that_could_not_be_queued_are_sent_by_the_sweep(
    tmp_path: Path, queue: RecordingQueue
) -> None:
    """A Subscription notification lost to a broker outage at completion comes later."""
    settings = make_settings(tmp_path)
    engine = create_db_engine(settings)
    upgrade_schema(engine)
    registry = SearchRegistry.load()
    store, fhir = ResourceStore(engine, registry), FhirService(registry, settings)
    jobs = JobService(store, fhir, queue, [ResultListeners(store, fhir, queue, settings)])
    subscription = {
        "resourceType": "Subscription",
        "status": "active",
        "reason": "results",
        "criteria": "Task?status=completed",
        "channel": {"type": "rest-hook", "endpoint": "https://receiver.example/hook"},
    }
    with store.session() as session:
        subscription_id = session.create(subscription).id
    task_id = jobs.submit(REQUEST).task_id
    jobs.start(task_id, "w")
    queue.down = True
    complete(jobs, task_id, [])
    assert jobs.task(task_id)["meta"]["tag"][0]["code"] == "follow-up-pending"
    queue.down = False
    queue.sent.clear()
    assert resend_follow_ups(jobs) == 1
    expected = [subscription_id, f"Task/{task_id}"]
    assert queue.sent == [(DELIVER_NOTIFICATION, expected)]
    assert "tag" not in jobs.task(task_id)["meta"]
    assert resend_follow_ups(jobs) == 0
