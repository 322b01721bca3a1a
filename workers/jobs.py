"""The life of one job in a worker: start its Task, run it, record the outcome.

Shared by every job task. A redelivered job finds its Task finished and does nothing;
bad input (any :class:`FhirAiError`) fails the Task once, with the reason, unretried; a
database that is away is retried with exponential backoff, then the Task fails; a soft
time limit fails the Task with a timeout reason.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any, Final

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from fhir_ai.errors import FhirAiError
from workers import metrics
from workers.runtime import worker_runtime

logger = logging.getLogger("workers.jobs")
RETRY_BACKOFF_S: Final = 10
MAX_RETRIES: Final = 5

#: Runs the job its Task describes; returns the references of what it wrote.
JobWork = Callable[[dict[str, Any]], list[str]]


def run_job(task: Any, task_id: str, work: JobWork, what: str) -> dict[str, Any]:
    """Run ``work`` for the Task ``task_id`` of the Celery ``task``; ``what`` names the
    work in failure reasons (``"The extraction exceeded its time limit"``)."""
    runtime = worker_runtime()
    job = runtime.jobs.start(task_id, worker=task.request.hostname or socket.gethostname())
    if job is None:
        return {"task": task_id, "status": "already-finished"}
    try:
        outputs = work(job)
    except FhirAiError as error:  # bad input: fails once, with the reason
        return _failed(task, task_id, error.message, error.issue_code)
    except SoftTimeLimitExceeded:
        return _failed(task, task_id, f"The {what} exceeded its time limit", "timeout")
    except OperationalError as error:  # the database is away: try again later
        if task.request.retries >= MAX_RETRIES:
            _failed(task, task_id, "The database stayed unavailable", "transient")
            raise
        countdown = RETRY_BACKOFF_S * 2**task.request.retries
        raise task.retry(exc=error, countdown=countdown) from error
    runtime.jobs.complete(task_id, outputs)
    return {"task": task_id, "status": "completed", "outputs": outputs}


def _failed(task: Any, task_id: str, reason: str, code: str) -> dict[str, Any]:
    worker_runtime().jobs.fail(task_id, reason, code)
    metrics.job_failed(task.name, code)
    logger.info("job failed", extra={"task_id": task_id, "issue_code": code})
    return {"task": task_id, "status": "failed", "issue_code": code}
