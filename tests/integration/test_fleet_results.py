"""Results of the fleet: Subscriptions notified, poison input failing once, 1,000 jobs over
the imaging and NLP queues.

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
from fhir_ai.imaging.jobs import IMAGING_ANALYSIS
from fhir_ai.jobs.probe import FLEET_PROBE, probe_request
from fhir_ai.jobs.service import JobService
from fhir_ai.nlp.jobs import NLP_EXTRACTION, extraction_request, pipeline_key
from fhir_ai.settings import Settings
from fhir_ai.subscriptions.delivery import DELIVERY_SUBTYPES
from tests.conftest import REDIS_URL, build_app, make_settings
from tests.dicom_helpers import distinct_studies, stow_body
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


IMAGING_SAMPLE = "dicom/chest_radiographs/highdicom_dx_image.dcm"  # DX thorax, 211 x 169
STUDIES_PER_STOW = 25


def _task_ids(app: Flask, job_type: str, status: str | None = None) -> set[str]:
    """Ids of the Tasks of ``job_type`` (and ``status``): one page of up to 1,000."""
    query = f"/fhir/Task?code={job_type}&_count=1000&_elements=id"
    bundle = app.test_client().get(query + (f"&status={status}" if status else "")).json
    assert bundle["total"] <= 1000
    return {entry["resource"]["id"] for entry in bundle.get("entry", [])}


def _stow_studies(app: Flask, payloads: list[bytes]) -> None:
    """Store the studies, several per STOW-RS request; each study queues its analysis."""
    client = app.test_client()
    for first in range(0, len(payloads), STUDIES_PER_STOW):
        body, content_type = stow_body(*payloads[first : first + STUDIES_PER_STOW])
        response = client.post("/dicomweb/studies", data=body, content_type=content_type)
        assert response.status_code == 200, response.json


def _reports(app: Flask) -> int:
    return int(app.test_client().get("/fhir/DiagnosticReport?_summary=count").json["total"])


def _outputs(app: Flask, task_ids: set[str]) -> list[str]:
    """The result references of the Tasks ``task_ids`` (completed ones), all of them."""
    found: list[str] = []
    ids = sorted(task_ids)
    for first in range(0, len(ids), 100):
        chunk = ",".join(ids[first : first + 100])
        bundle = app.test_client().get(f"/fhir/Task?_id={chunk}&_count=100").json
        for entry in bundle.get("entry", []):
            found += [o["valueReference"]["reference"] for o in entry["resource"]["output"]]
    return found


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_thousand_jobs_over_both_queues_complete_without_duplicates(
    app: Flask, settings: Settings, workers: list[Worker], tmp_path: Path, shared_data: Path
) -> None:
    """500 imaging analyses (small real radiographs, new UIDs each) on an imaging worker
    as deployed (threads pool, 16 job threads, batched inference) and 500 note
    extractions on an NLP worker (prefork), both fed through the broker at once."""
    env = _env(settings, tmp_path)
    # This test is about throughput and duplicates: job time limits fit a busy 2-core box.
    env.update(FHIR_AI_TASK_TIME_LIMIT_S="300", FHIR_AI_BROKER_VISIBILITY_TIMEOUT_S="330")
    imaging = start_worker(env, f"i{uuid.uuid4().hex[:6]}", "imaging", tmp_path, 16, "threads")
    nlp = start_worker(env, f"n{uuid.uuid4().hex[:6]}", "nlp,default", tmp_path)
    workers += [imaging, nlp]
    jobs = job_service(settings)
    imaging_before = _task_ids(app, IMAGING_ANALYSIS)
    reports_before = _reports(app)

    payloads = distinct_studies((shared_data / IMAGING_SAMPLE).read_bytes(), 500, "BULK")
    _stow_studies(build_app(settings.model_copy(update={"analyze_on_store": True})), payloads)
    imaging_ids = _task_ids(app, IMAGING_ANALYSIS) - imaging_before
    documents = [note(app, f"Note {i}: cough, no fever.".encode()) for i in range(500)]
    nlp_ids = {extract(jobs, settings, d) for d in documents}
    assert len(imaging_ids) == len(nlp_ids) == 500

    def done() -> bool:
        failed = (_task_ids(app, IMAGING_ANALYSIS, "failed") & imaging_ids) | (
            _task_ids(app, NLP_EXTRACTION, "failed") & nlp_ids
        )
        assert not failed, (jobs.task(failed.pop()).get("statusReason"), tail(imaging.log))
        return imaging_ids <= _task_ids(app, IMAGING_ANALYSIS, "completed") and (
            nlp_ids <= _task_ids(app, NLP_EXTRACTION, "completed")
        )

    assert wait_for(done, 1100, interval=5), (tail(imaging.log), tail(nlp.log))
    outputs = _outputs(app, imaging_ids | nlp_ids)
    assert len(outputs) == len(set(outputs)) == 1000  # one report per job
    assert all(ref.startswith("DiagnosticReport/") for ref in outputs)
    assert _reports(app) - reports_before == 1000  # and no other: zero duplicates
