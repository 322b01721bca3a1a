"""How a worker records a job's outcome: results and completion in one transaction, against
a Task that may have changed while the job ran (a real SQLite store, this process's worker
runtime built from ``FHIR_AI_*`` variables as a worker builds it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_ai.jobs.completion import JobResults
from fhir_ai.jobs.probe import probe_request, probe_result
from fhir_ai.store.database import upgrade_schema
from tests.conftest import REDIS_URL
from workers.jobs import _complete
from workers.runtime import WorkerRuntime, worker_runtime


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerRuntime]:
    monkeypatch.setenv("FHIR_AI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FHIR_AI_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("FHIR_AI_LOG_LEVEL", "WARNING")
    worker_runtime.cache_clear()
    built = worker_runtime()
    upgrade_schema(built.engine)
    yield built
    built.engine.dispose()
    worker_runtime.cache_clear()


def _observations(runtime: WorkerRuntime) -> int:
    with runtime.store.session(read_only=True) as session:
        query = runtime.fhir.parse_search("Observation", [], strict=True)
        return len(session.search(query, "http://localhost/fhir").matches)


def test_a_task_started_again_by_a_redelivered_copy_is_completed_once(
    runtime: WorkerRuntime,
) -> None:
    task_id = runtime.jobs.submit(probe_request("copy")).task_id
    first = runtime.jobs.start(task_id, worker="w1")
    assert first is not None
    assert runtime.jobs.start(task_id, worker="w2") is not None  # the copy: a new version
    results = JobResults.of(probe_result(first["identifier"][0]["value"]))
    outputs = _complete(task_id, first, results)
    assert outputs is not None and outputs[0].startswith("Observation/")
    assert runtime.jobs.task(task_id)["status"] == "completed"
    assert _complete(task_id, first, results) is None  # the copy, finishing second
    assert _observations(runtime) == 1


def test_a_task_failed_while_its_job_ran_gets_nothing_written(runtime: WorkerRuntime) -> None:
    task_id = runtime.jobs.submit(probe_request("late")).task_id
    job = runtime.jobs.start(task_id, worker="w1")
    assert job is not None
    runtime.jobs.fail(task_id, "The probe exceeded its time limit", "timeout")
    results = JobResults.of(probe_result(job["identifier"][0]["value"]))
    assert _complete(task_id, job, results) is None
    assert runtime.jobs.task(task_id)["status"] == "failed"
    assert _observations(runtime) == 0
