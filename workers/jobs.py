"""The life of one job in a worker: start its Task, run it, record the outcome.

Shared by every job task. The job's results and its Task's completion are written in one
transaction (:mod:`fhir_ai.jobs.completion`). A redelivered job finds its Task finished
and does nothing; one whose Task finished while it ran (a redelivered copy that was
quicker) writes nothing;
bad input (any :class:`FhirAiError`) fails the Task once, with the reason, unretried; so
does a defect (any other exception, which would otherwise leave the Task in progress
forever), logged with its type and traceback but not its message; a database that is
away is retried with exponential backoff, then the Task fails; a job past its soft time
limit fails its Task with a timeout reason. Celery enforces the time
limits in prefork pool children; in the threads and solo pools this process's
:func:`watchdog` does (:mod:`workers.time_limits`), and a result that comes back late is
discarded.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Callable
from functools import cache
from typing import Any, Final

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from fhir_ai.errors import FhirAiError, PreconditionFailed
from fhir_ai.jobs.completion import JobResults, completing, output_references
from fhir_ai.jobs.task_resource import ACTIVE_STATES
from workers import metrics
from workers.runtime import worker_runtime
from workers.time_limits import JobClock, JobExpired, Watchdog, checkpoint, job_clock, warm_shutdown

logger = logging.getLogger("workers.jobs")
RETRY_BACKOFF_S: Final = 10
MAX_RETRIES: Final = 5
TIMEOUT: Final = "timeout"

#: Runs the job its Task describes; returns its results, written by :func:`run_job`.
JobWork = Callable[[dict[str, Any]], JobResults]
#: How many times a completion is tried against a Task that changed but is still active.
COMPLETION_ATTEMPTS: Final = 3


def run_job(task: Any, task_id: str, work: JobWork, what: str) -> dict[str, Any]:
    """Run ``work`` for the Task ``task_id`` of the Celery ``task``; ``what`` names the
    work in failure reasons (``"The extraction exceeded its time limit"``)."""
    runtime = worker_runtime()
    with job_clock(watchdog, task, task_id, what) as clock:
        job = runtime.jobs.start(task_id, worker=task.request.hostname or socket.gethostname())
        if job is None:
            return {"task": task_id, "status": "already-finished"}
        failure: tuple[str, str] | None = None
        outputs: list[str] | None = None
        try:
            outputs = _complete(task_id, job, work(job))
        except FhirAiError as error:  # bad input: fails once, with the reason
            failure = (error.message, error.issue_code)
        except SoftTimeLimitExceeded:  # prefork: Celery's own soft limit
            failure = (f"The {what} exceeded its time limit", TIMEOUT)
        except JobExpired:  # threads, solo: its results came back past the soft limit
            return _expired(task, task_id, clock)
        except OperationalError as error:  # the database is away: try again later
            if not _may_record(clock):
                return _expired(task, task_id, clock)
            if task.request.retries >= MAX_RETRIES:
                _failed(task, task_id, "The database stayed unavailable", "transient")
                raise
            countdown = RETRY_BACKOFF_S * 2**task.request.retries
            raise task.retry(exc=error, countdown=countdown) from error
        except Exception as error:  # a defect: fail the Task once rather than leave it running
            _log_defect(task_id, error)
            failure = (
                f"The {what} stopped on an internal error ({type(error).__name__}); "
                "the worker log has the details",
                "exception",
            )
        if failure is not None:
            if not _may_record(clock):
                return _expired(task, task_id, clock)
            return _failed(task, task_id, *failure)
        if outputs is None:
            return {"task": task_id, "status": "already-finished"}
        runtime.jobs.notify_completed(task_id)
    return {"task": task_id, "status": "completed", "outputs": outputs}


def _complete(task_id: str, job: dict[str, Any], results: JobResults) -> list[str] | None:
    """Write ``results`` and complete the Task in one transaction; the outputs' references,
    or None when the Task has finished meanwhile (nothing written).

    The write is the stage boundary where a job past its soft time limit stops
    (:class:`~workers.time_limits.JobExpired`, nothing written). A Task that changed since
    ``job`` was read but is still active (a redelivered copy of the job started it again)
    is completed from its current version.
    """
    runtime = worker_runtime()
    for _ in range(COMPLETION_ATTEMPTS):
        try:
            return output_references(results, runtime.write(completing(results, job)))
        except PreconditionFailed:
            current = runtime.jobs.task(task_id)
            if current.get("status") not in ACTIVE_STATES:
                logger.info("job finished elsewhere; its result is discarded",
                            extra={"task_id": task_id})  # fmt: skip
                return None
            if current["meta"]["versionId"] == job["meta"]["versionId"]:
                raise  # not the Task's version: a result entry's own precondition
            job = current
    raise PreconditionFailed("The Task kept changing while its job completed")


def _log_defect(task_id: str, error: Exception) -> None:
    """The error's type and where it happened, not its message (which may quote data)."""
    logger.error(
        "job stopped on an internal error",
        extra={
            "task_id": task_id,
            "error_type": type(error).__name__,
            "traceback": "".join(traceback.format_tb(error.__traceback__))[-4000:],
        },
    )


def _may_record(clock: JobClock | None) -> bool:
    """The stage boundary before the outcome is recorded: False once past the soft limit."""
    try:
        checkpoint()
    except JobExpired:
        return False
    return True


def _expired(task: Any, task_id: str, clock: JobClock | None) -> dict[str, Any]:
    """A job past its soft limit: its Task is failed (by whoever saw it first), the rest of
    what it did is discarded."""
    if clock is not None and clock.claim_failure():
        _failed(task, task_id, clock.reason, TIMEOUT)
    logger.info("job expired; its late result is discarded", extra={"task_id": task_id})
    return {"task": task_id, "status": "failed", "issue_code": TIMEOUT}


def _failed(task: Any, task_id: str, reason: str, code: str) -> dict[str, Any]:
    worker_runtime().jobs.fail(task_id, reason, code)
    metrics.job_failed(task.name, code)
    logger.info("job failed", extra={"task_id": task_id, "issue_code": code})
    return {"task": task_id, "status": "failed", "issue_code": code}


def _fail_expired(clock: JobClock) -> None:
    """The watchdog's way to fail the Task of a job past its soft limit."""
    worker_runtime().jobs.fail(clock.task_id, clock.reason, TIMEOUT)
    metrics.job_failed(clock.task_name, TIMEOUT)
    logger.info("job failed", extra={"task_id": clock.task_id, "issue_code": TIMEOUT})


@cache
def watchdog() -> Watchdog:
    """This process's job watchdog (a per-process cache; started with the first job)."""
    return Watchdog(on_expired=_fail_expired, stop_consuming=warm_shutdown, exit_process=os._exit)
