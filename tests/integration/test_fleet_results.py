"""Results of the fleet: Subscriptions notified, poison input failing once, 1,000 jobs.

Real Redis (``FHIR_AI_TEST_REDIS_URL``), real PostgreSQL and real worker processes.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from fhir_ai.fhir.ai_results import JOB_TYPES
from fhir_ai.jobs.probe import FLEET_PROBE, probe_request
from fhir_ai.jobs.service import JobService
from fhir_ai.nlp.jobs import extraction_request, pipeline_key
from fhir_ai.settings import Settings
from fhir_ai.subscriptions.delivery import DELIVERY_SUBTYPES
from tests.conftest import REDIS_URL, build_app, make_settings
from tests.fleet_helpers import Receiver, Worker, start_worker, worker_env
from tests.integration.test_fleet_faults import completed, job_service, status
from tests.process_helpers import tail, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def app(tmp_path: Path, postgres_url: str) -> Flask:
    settings = make_settings(
        tmp_path, database_url=postgres_url, cds_auth="off", extract_on_create=False
    )
    return build_app(settings)


@pytest.fixture
def settings(app: Flask) -> Settings:
    return app.extensions["fhir_ai.settings"]  # type: ignore[no-any-return]


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return worker_env(REDIS_URL, settings.resolved_database_url(), tmp_path)


def subscribe(app: Flask, criteria: str, endpoint: str, **channel: Any) -> str:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "fleet test",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, **channel},
    }
    response = app.test_client().post("/fhir/Subscription", json=body)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def subscription(app: Flask, subscription_id: str) -> dict[str, Any]:
    response = app.test_client().get(f"/fhir/Subscription/{subscription_id}")
    return response.json  # type: ignore[no-any-return]


def note(app: Flask, data: bytes) -> tuple[str, str]:
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [
            {"attachment": {"contentType": "text/plain; charset=utf-8",
                            "data": base64.b64encode(data).decode()}}
        ],
    }  # fmt: skip
    response = app.test_client().post("/fhir/DocumentReference", json=document)
    assert response.status_code == 201, response.json
    return str(response.json["id"]), str(response.json["meta"]["versionId"])


def extract(jobs: JobService, settings: Settings, document: tuple[str, str]) -> str:
    pipeline = pipeline_key(settings.terminology_path())
    request = extraction_request(f"DocumentReference/{document[0]}", document[1], None, pipeline)
    return jobs.submit(request).task_id


def test_a_subscriber_is_notified_once_per_result_and_again_after_an_outage(
    app: Flask, settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    receiver = Receiver()
    receiver.start()
    criteria = f"Task?status=completed&code={JOB_TYPES}|{FLEET_PROBE}"
    headers = ["Authorization: Bearer s3cret"]
    sub = subscribe(app, criteria, receiver.url, payload="application/fhir+json", header=headers)
    assert subscription(app, sub)["status"] == "active"
    env = _env(settings, tmp_path)
    workers.append(start_worker(env, f"s{uuid.uuid4().hex[:6]}", "default", tmp_path))
    jobs = job_service(settings)
    first = jobs.submit(probe_request(uuid.uuid4().hex)).task_id
    assert wait_for(lambda: receiver.ids() == [first], 90), tail(workers[0].log)
    assert receiver.received[0]["authorization"] == "Bearer s3cret"
    assert receiver.received[0]["body"]["status"] == "completed"

    receiver.stop()
    second = jobs.submit(probe_request(uuid.uuid4().hex)).task_id
    assert wait_for(lambda: subscription(app, sub)["status"] == "error", 60), tail(workers[0].log)
    assert "not reachable" in subscription(app, sub)["error"]
    receiver.start()
    assert wait_for(lambda: receiver.ids() == [first, second], 60), tail(workers[0].log)
    assert wait_for(lambda: subscription(app, sub)["status"] == "active", 30)
    assert "error" not in subscription(app, sub)
    deliveries = f"{DELIVERY_SUBTYPES}|subscription-notification"
    log = (
        app.test_client()
        .get(f"/fhir/AuditEvent?entity=Subscription/{sub}&subtype={deliveries}&_count=50")
        .json
    )
    outcomes = sorted(e["resource"]["outcome"] for e in log.get("entry", []))
    assert outcomes.count("0") == 2 and outcomes.count("4") >= 1
    receiver.stop()


def test_poison_note_fails_once_and_a_good_one_notifies_a_payloadless_subscriber(
    app: Flask, settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    receiver = Receiver()
    receiver.start()
    subscribe(app, "DiagnosticReport?status=preliminary,final", receiver.url)
    env = _env(settings, tmp_path)
    workers.append(start_worker(env, f"n{uuid.uuid4().hex[:6]}", "nlp,default", tmp_path))
    jobs = job_service(settings)
    poison = extract(jobs, settings, note(app, b"Chest pain \xff\xfe\xc3\x28 noted"))
    good = extract(jobs, settings, note(app, b"Patient has pneumonia. No pleural effusion."))
    assert wait_for(lambda: completed(jobs, [good]), 180), tail(workers[0].log)
    assert status(jobs, poison) == "failed"
    failed = jobs.task(poison)
    assert "not valid utf-8" in failed["statusReason"]["text"]
    history = app.test_client().get(f"/fhir/Task/{poison}/_history").json
    states = [e["resource"]["status"] for e in history["entry"]]
    assert sorted(states) == ["failed", "in-progress", "requested"]  # run once, not retried
    assert wait_for(lambda: len(receiver.received) == 1, 60), tail(workers[0].log)
    assert receiver.received[0]["body"] is None  # no payload: an empty POST
    receiver.stop()


def _counts(app: Flask) -> tuple[int, int]:
    client = app.test_client()
    reports = client.get("/fhir/DiagnosticReport?_summary=count").json["total"]
    probe_code = f"https://fhir-ai.org/fhir/CodeSystem/fleet|{FLEET_PROBE}"
    probes = client.get(f"/fhir/Observation?code={probe_code}&_summary=count").json["total"]
    return int(reports), int(probes)


def _all_done(jobs: JobService, pending: set[str]) -> bool:
    """True once every Task is completed; drops finished ones from ``pending`` as it goes."""
    pending.difference_update([t for t in list(pending) if status(jobs, t) == "completed"])
    return not pending


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_thousand_jobs_over_two_queues_complete_without_duplicates(
    app: Flask, settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    env = _env(settings, tmp_path)
    workers.append(start_worker(env, f"t{uuid.uuid4().hex[:6]}", "nlp", tmp_path))
    workers.append(start_worker(env, f"u{uuid.uuid4().hex[:6]}", "default", tmp_path, 2))
    jobs = job_service(settings)
    reports_before, probes_before = _counts(app)
    documents = [note(app, f"Note {i}: cough, no fever.".encode()) for i in range(500)]
    task_ids = [extract(jobs, settings, d) for d in documents]
    task_ids += [jobs.submit(probe_request(f"bulk-{uuid.uuid4().hex}")).task_id for _ in range(500)]
    assert len(set(task_ids)) == 1000
    pending = set(task_ids)
    assert wait_for(lambda: _all_done(jobs, pending), 800, interval=5), tail(workers[0].log)
    reports, probes = _counts(app)
    assert (reports - reports_before, probes - probes_before) == (500, 500)
