"""A job's results and its Task's completion in one transaction (real SQLite store)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_ai.errors import FhirAiError, PreconditionFailed
from fhir_ai.jobs.completion import JobResults, completing, output_references
from fhir_ai.jobs.probe import probe_request, probe_result
from fhir_ai.jobs.service import JobService
from tests.unit.jobs.conftest import BASE, write_transaction


def _started(jobs: JobService, name: str) -> dict[str, Any]:
    task_id = jobs.submit(probe_request(name)).task_id
    started = jobs.start(task_id, worker="w1")
    assert started is not None
    return started


def _observations(jobs: JobService) -> int:
    with jobs.store.session(read_only=True) as session:
        query = jobs.fhir.parse_search("Observation", [], strict=True)
        return len(session.search(query, BASE).matches)


def test_results_and_the_completed_task_are_written_together(jobs: JobService) -> None:
    job = _started(jobs, "one")
    results = JobResults.of(probe_result(job["identifier"][0]["value"]))
    written = write_transaction(jobs, completing(results, job))
    outputs = output_references(results, written)
    assert len(outputs) == 1 and outputs[0].startswith("Observation/")
    task = jobs.task(job["id"])
    assert task["status"] == "completed"
    assert [o["valueReference"]["reference"] for o in task["output"]] == outputs
    assert "end" in task["executionPeriod"]


def test_a_task_changed_since_the_job_started_refuses_the_whole_transaction(
    jobs: JobService,
) -> None:
    job = _started(jobs, "two")
    jobs.fail(job["id"], "The probe exceeded its time limit", "timeout")  # the watchdog
    results = JobResults.of(probe_result(job["identifier"][0]["value"]))
    with pytest.raises(PreconditionFailed):
        write_transaction(jobs, completing(results, job))
    assert jobs.task(job["id"])["status"] == "failed"
    assert _observations(jobs) == 0  # the late result is not written


def test_a_result_that_cannot_be_written_leaves_the_task_in_progress(jobs: JobService) -> None:
    job = _started(jobs, "three")
    bundle = probe_result(job["identifier"][0]["value"])
    bundle["entry"][0]["resource"]["status"] = "not-a-status"
    with pytest.raises(FhirAiError):
        write_transaction(jobs, completing(JobResults.of(bundle), job))
    assert jobs.task(job["id"])["status"] == "in-progress"
    assert _observations(jobs) == 0


def test_a_result_written_before_is_the_output_of_a_rerun(jobs: JobService) -> None:
    first = _started(jobs, "four")
    key = first["identifier"][0]["value"]
    # as a run that died before completing wrote it:
    earlier = write_transaction(jobs, probe_result(key))
    results = JobResults.of(probe_result(key))
    outputs = output_references(results, write_transaction(jobs, completing(results, first)))
    assert outputs == earlier and _observations(jobs) == 1


def test_outputs_are_the_entries_of_the_output_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Observation"}},
            {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "DiagnosticReport"}},
        ],
    }
    results = JobResults.of(bundle, "DiagnosticReport")
    assert results.outputs == ("urn:uuid:b",)
    assert output_references(results, ["Observation/1", "DiagnosticReport/2", "Task/t"]) == [
        "DiagnosticReport/2"
    ]
