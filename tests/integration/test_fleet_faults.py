"""The worker fleet under faults: real Redis, real PostgreSQL, real worker processes.

Workers run with a 20 s hard time limit and a 25 s visibility timeout (tests/fleet_helpers)
so that a lost worker's job comes back within the test's patience.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.imaging.report import RESULT_KEYS
from fhir_ai.jobs.probe import probe_request
from fhir_ai.jobs.queue import CeleryJobQueue
from fhir_ai.jobs.resend import resend_pending
from fhir_ai.jobs.service import JobService
from fhir_ai.jobs.task_resource import JOB_KEYS, unqueued
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine
from fhir_ai.store.repository import ResourceStore
from fhir_ai.subscriptions.listeners import ResultListeners
from tests.conftest import REDIS_URL, build_app, make_settings
from tests.fleet_helpers import RedisServer, Worker, start_worker, worker_env
from tests.process_helpers import tail, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
DONE_TIMEOUT_S = 120


@pytest.fixture
def fleet_settings(tmp_path: Path, postgres_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url=postgres_url, cds_auth="off")
    build_app(settings)  # migrates the session's database
    return settings


def job_service(settings: Settings) -> JobService:
    engine = create_db_engine(settings)
    registry = SearchRegistry.load()
    store = ResourceStore(engine, registry)
    fhir = FhirService(registry, settings)
    queue = CeleryJobQueue(settings)
    return JobService(store, fhir, queue, [ResultListeners(store, fhir, queue, settings)])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def status(jobs: JobService, task_id: str) -> str:
    return str(jobs.task(task_id).get("status"))


def results(jobs: JobService, key: str) -> int:
    params = [("identifier", f"{JOB_KEYS}|{key}")]
    query = jobs.fhir.parse_search("Observation", params, strict=True)
    with jobs.store.session(read_only=True) as session:
        return len(session.search(query, "").matches)


def task_of(jobs: JobService, key: str) -> str:
    with jobs.store.session(read_only=True) as session:
        return jobs.fhir.matching_ids(session, "Task", f"identifier={JOB_KEYS}|{key}", "")[0]


def completed(jobs: JobService, task_ids: list[str]) -> bool:
    return all(status(jobs, task_id) == "completed" for task_id in task_ids)


def test_a_sigkilled_worker_job_is_redelivered_and_done_once(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    env = worker_env(REDIS_URL, fleet_settings.resolved_database_url(), tmp_path)
    first = start_worker(env, f"a{uuid.uuid4().hex[:6]}", "default", tmp_path)
    workers.append(first)
    jobs = job_service(fleet_settings)
    request = probe_request(uuid.uuid4().hex, seconds=8)
    task_id = jobs.submit(request).task_id
    assert wait_for(lambda: status(jobs, task_id) == "in-progress", 90), tail(first.log)
    assert jobs.task(task_id)["owner"]["display"] == first.name
    first.kill()
    assert status(jobs, task_id) == "in-progress"  # the job in hand was lost with the worker
    second = start_worker(env, f"b{uuid.uuid4().hex[:6]}", "default", tmp_path)
    workers.append(second)
    assert wait_for(lambda: status(jobs, task_id) == "completed", DONE_TIMEOUT_S), tail(second.log)
    assert jobs.task(task_id)["owner"]["display"] == second.name
    assert results(jobs, request.key) == 1


def test_sigterm_is_a_warm_shutdown_that_finishes_the_job_in_hand(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    env = worker_env(REDIS_URL, fleet_settings.resolved_database_url(), tmp_path)
    worker = start_worker(env, f"w{uuid.uuid4().hex[:6]}", "default", tmp_path)
    workers.append(worker)
    jobs = job_service(fleet_settings)
    request = probe_request(uuid.uuid4().hex, seconds=3)
    task_id = jobs.submit(request).task_id
    assert wait_for(lambda: status(jobs, task_id) == "in-progress", 90), tail(worker.log)
    assert worker.terminate() == 0, tail(worker.log)
    assert status(jobs, task_id) == "completed"
    assert results(jobs, request.key) == 1
    assert "Warm shutdown" in worker.log.read_text(errors="replace")


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_rolling_restart_hands_the_queued_jobs_to_the_next_worker_at_once(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path, pool: str
) -> None:
    """A deploy stops a worker with SIGTERM: it finishes the jobs in hand, and every job
    it did not finish goes to the next worker at once, not after the broker's visibility
    timeout (an hour or more in production; 10 minutes here, beyond the test's patience).
    With late acks and a prefetch of one job per slot a worker holds only the jobs it
    runs, and kombu gives back any unacked message when the worker's channel closes."""
    env = worker_env(REDIS_URL, fleet_settings.resolved_database_url(), tmp_path)
    env["FHIR_AI_BROKER_VISIBILITY_TIMEOUT_S"] = "600"
    first = start_worker(env, f"a{uuid.uuid4().hex[:6]}", "default", tmp_path, 2, pool)
    workers.append(first)
    jobs = job_service(fleet_settings)
    task_ids = [jobs.submit(probe_request(uuid.uuid4().hex, seconds=2)).task_id for _ in range(8)]

    def running() -> int:
        return sum(status(jobs, task_id) == "in-progress" for task_id in task_ids)

    assert wait_for(lambda: running() >= 2, 90), tail(first.log)
    assert first.terminate() == 0, tail(first.log)
    finished_by_first = [t for t in task_ids if status(jobs, t) == "completed"]
    assert finished_by_first, "the warm shutdown finished the jobs in hand"
    assert all(status(jobs, t) in ("completed", "requested") for t in task_ids)

    second = start_worker(env, f"b{uuid.uuid4().hex[:6]}", "default", tmp_path, 2, pool)
    workers.append(second)
    assert wait_for(lambda: completed(jobs, task_ids), 90), [status(jobs, t) for t in task_ids]
    owners = {t: jobs.task(t)["owner"]["display"] for t in task_ids}
    assert {owners[t] for t in finished_by_first} == {first.name}
    assert {owners[t] for t in task_ids if t not in finished_by_first} == {second.name}


def _running_imaging_task(app: Flask) -> str:
    client = app.test_client()
    patient = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json["id"]
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "https://fhir-ai.org/fhir/CodeSystem/job-type",
                             "code": "imaging-analysis"}]},
        "for": {"reference": f"Patient/{patient}"},
    }  # fmt: skip
    assert client.post("/fhir/Task", json=task).status_code == 201
    return str(patient)


def _pending_card(app: Flask, patient: str) -> str:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient},
        "prefetch": {"conditions": None},
    }
    response = app.test_client().post("/cds-services/imaging-ai-findings", json=body)
    assert response.status_code == 200, response.json
    return str(response.json["cards"][-1]["summary"])


def test_a_redis_restart_loses_no_job_and_the_web_app_degrades(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        settings = fleet_settings.model_copy(update={"broker_url": redis.url})
        app = build_app(settings)
        patient = _running_imaging_task(app)
        env = worker_env(redis.url, settings.resolved_database_url(), tmp_path)
        workers.append(start_worker(env, f"r{uuid.uuid4().hex[:6]}", "default", tmp_path))
        jobs = job_service(settings)
        queued = [jobs.submit(probe_request(uuid.uuid4().hex, 1)).task_id for _ in range(6)]
        assert wait_for(lambda: status(jobs, queued[0]) != "requested", 90), tail(workers[0].log)

        redis.stop()
        assert app.test_client().get("/readyz").json["checks"]["broker"].startswith("failed")
        assert "delayed" in _pending_card(app, patient)
        late = probe_request(uuid.uuid4().hex)
        with pytest.raises(Exception, match="unavailable"):
            jobs.submit(late)
        late_id = task_of(jobs, late.key)
        assert unqueued(jobs.task(late_id))  # the Task waits, marked not queued

        redis.start()
        assert app.test_client().get("/readyz").status_code == 200
        assert wait_for(lambda: "still running" in _pending_card(app, patient), 15)
        assert resend_pending(jobs, None).sent == 1  # what `fhir-ai jobs resend` does
        everything = [*queued, late_id]
        assert wait_for(lambda: completed(jobs, everything), DONE_TIMEOUT_S), tail(workers[0].log)
    finally:
        for worker in workers:
            worker.terminate()
        redis.stop()


RG1 = ("RG1_J2KR.dcm", "RG1_JLSN.dcm", "RG1_J2KI.dcm", "RG1_UNCR.dcm")  # one study, slow codecs


def _stow(app: Flask, files: list[Path]) -> str:
    """STOW-RS ``files``; the analysis Task it started."""
    body = (
        b"".join(
            b"--b\r\nContent-Type: application/dicom\r\n\r\n" + f.read_bytes() + b"\r\n"
            for f in files
        )
        + b"--b--\r\n"
    )
    response = app.test_client().post(
        "/dicomweb/studies",
        data=body,
        content_type='multipart/related; type="application/dicom"; boundary=b',
    )
    assert response.status_code == 200, response.json
    return str(response.headers["Content-Location"].rsplit("/", 1)[1])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_sigkilled_imaging_worker_job_is_redelivered_and_reported_once(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path, shared_data: Path
) -> None:
    settings = fleet_settings.model_copy(update={"analyze_on_store": True})
    app = build_app(settings)
    # A model load and four large decodes on a busy 2-core machine can near the fleet tests'
    # 20 s limit: this job gets 60 s (and the visibility timeout must exceed it).
    env = worker_env(REDIS_URL, settings.resolved_database_url(), tmp_path)
    env.update(FHIR_AI_TASK_TIME_LIMIT_S="60", FHIR_AI_BROKER_VISIBILITY_TIMEOUT_S="65")
    first = start_worker(env, f"i{uuid.uuid4().hex[:6]}", "imaging", tmp_path)
    workers.append(first)
    jobs = job_service(settings)
    folder = shared_data / "dicom" / "chest_radiographs"
    task_id = _stow(app, [folder / name for name in RG1])
    assert wait_for(lambda: status(jobs, task_id) != "requested", 90, 0.02), tail(first.log)
    first.kill()  # decoding four large JPEG 2000 / JPEG-LS images takes over a second
    assert status(jobs, task_id) == "in-progress", "the job ended before the kill"
    second = start_worker(env, f"j{uuid.uuid4().hex[:6]}", "imaging", tmp_path)
    workers.append(second)
    ended = wait_for(lambda: status(jobs, task_id) in ("completed", "failed"), 180)
    assert ended and status(jobs, task_id) == "completed", (
        jobs.task(task_id).get("statusReason"),
        tail(second.log),
    )
    key = jobs.task(task_id)["identifier"][0]["value"]
    reports = app.test_client().get(
        "/fhir/DiagnosticReport", query_string={"identifier": f"{RESULT_KEYS}|{key}"}
    )
    assert reports.json["total"] == 1


def _threads_worker(
    settings: Settings, workers: list[Worker], prefix: str, tmp_path: Path
) -> tuple[Worker, JobService]:
    """A worker on the threads pool (the imaging worker's pool, where Celery enforces no
    time limit) consuming ``default`` (the probe jobs' queue), its jobs limited to 20 s
    (soft limit 18 s); and the service that submits them."""
    env = worker_env(REDIS_URL, settings.resolved_database_url(), tmp_path)
    env.update(FHIR_AI_TASK_TIME_LIMIT_S="20", FHIR_AI_BROKER_VISIBILITY_TIMEOUT_S="21")
    worker = start_worker(env, f"{prefix}{uuid.uuid4().hex[:6]}", "default", tmp_path, 4, "threads")
    workers.append(worker)
    return worker, job_service(settings)


def _timed_out(jobs: JobService, task_id: str) -> None:
    task = jobs.task(task_id)
    assert task["status"] == "failed"
    assert task["statusReason"]["text"] == "The probe exceeded its time limit"
    issue = task["contained"][0]["issue"][0]
    assert (issue["code"], issue["diagnostics"]) == ("timeout", task["statusReason"]["text"])


def _states(app: Flask, task_id: str) -> list[str]:
    history = app.test_client().get(f"/fhir/Task/{task_id}/_history").json
    return sorted(e["resource"]["status"] for e in history["entry"])


@pytest.mark.slow
def test_a_late_result_on_the_threads_pool_is_discarded_and_the_worker_goes_on(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    worker, jobs = _threads_worker(fleet_settings, workers, "l", tmp_path)
    # Its sleep outlasts the soft limit (18 s) and ends before the hard one (20 s).
    late = probe_request(uuid.uuid4().hex, seconds=19)
    task_id = jobs.submit(late).task_id
    assert wait_for(lambda: status(jobs, task_id) == "in-progress", 90), tail(worker.log)
    assert wait_for(lambda: status(jobs, task_id) == "failed", 40), tail(worker.log)
    _timed_out(jobs, task_id)
    discarded = "its late result is discarded"
    log = worker.log
    assert wait_for(lambda: discarded in log.read_text(errors="replace"), 10), tail(log)
    assert results(jobs, late.key) == 0  # the probe came back and wrote nothing
    assert _states(build_app(fleet_settings), task_id) == ["failed", "in-progress", "requested"]
    assert worker.process.poll() is None  # not stuck: the worker goes on
    after = jobs.submit(probe_request(uuid.uuid4().hex)).task_id
    assert wait_for(lambda: status(jobs, after) == "completed", 30), tail(worker.log)
    assert worker.terminate() == 0, tail(worker.log)


@pytest.mark.slow
def test_a_stuck_job_on_the_threads_pool_fails_and_its_worker_retires(
    fleet_settings: Settings, workers: list[Worker], tmp_path: Path
) -> None:
    first, jobs = _threads_worker(fleet_settings, workers, "s", tmp_path)
    stuck = probe_request(uuid.uuid4().hex, seconds=300)  # a blocking call, far past 20 s
    stuck_id = jobs.submit(stuck).task_id
    assert wait_for(lambda: status(jobs, stuck_id) == "in-progress", 90), tail(first.log)
    time.sleep(10)
    # Still running when the stuck job passes its hard limit (20 s), within its own limits.
    live = jobs.submit(probe_request(uuid.uuid4().hex, seconds=15)).task_id
    assert wait_for(lambda: status(jobs, stuck_id) == "failed", 30), tail(first.log)
    _timed_out(jobs, stuck_id)
    # Its thread cannot be stopped: past the hard limit the worker stops taking jobs, lets
    # the live one finish and exits for its supervisor to start it again.
    assert wait_for(lambda: first.process.poll() is not None, 60), tail(first.log)
    assert first.process.returncode == 75, tail(first.log)
    assert status(jobs, live) == "completed"
    log = first.log.read_text(errors="replace")
    assert "stuck past its hard time limit" in log and "Warm shutdown" in log, tail(first.log)

    # The stuck job's message was never acknowledged: it comes back, finds its Task
    # failed and runs nothing.
    second, _ = _threads_worker(fleet_settings, workers, "t", tmp_path)
    redelivered = "job already finished"
    assert wait_for(lambda: redelivered in second.log.read_text(errors="replace"), 60), tail(
        second.log
    )
    assert status(jobs, stuck_id) == "failed" and results(jobs, stuck.key) == 0
    assert _states(build_app(fleet_settings), stuck_id) == ["failed", "in-progress", "requested"]
    assert second.terminate() == 0, tail(second.log)
