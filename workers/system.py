"""Housekeeping tasks: ``ping`` proves a worker consumes and answers; ``probe`` runs a
fleet probe job (:mod:`fhir_ai.jobs.probe`) end to end; ``process_state`` tells what the
pool process that runs it holds (:mod:`workers.process_state`)."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from celery import shared_task

from fhir_ai.jobs.completion import JobResults
from fhir_ai.jobs.probe import MAX_PROBE_SECONDS, probe_result
from fhir_ai.jobs.resend import resend_follow_ups, resend_pending
from fhir_ai.jobs.task_resource import JOB_KEYS, parameter
from workers.jobs import MAX_RETRIES, run_job
from workers.process_state import process_state
from workers.runtime import worker_runtime

logger = logging.getLogger("workers.system")


def ping(task: Any) -> dict[str, object]:
    """Answer ``{"pong": True, "worker": <worker hostname>}``."""
    hostname = task.request.hostname or socket.gethostname()
    logger.info("ping", extra={"worker": hostname})
    return {"pong": True, "worker": hostname}


ping_task = shared_task(name="workers.system.ping", bind=True)(ping)


def pool_process_state(task: Any) -> dict[str, Any]:
    """:func:`~workers.process_state.process_state` of the pool process that runs it."""
    return {"worker": task.request.hostname or socket.gethostname(), **process_state()}


process_state_task = shared_task(name="workers.system.process_state", bind=True)(pool_process_state)


def probe(task: Any, task_id: str) -> dict[str, Any]:
    """Run the probe job of Task ``task_id``: wait its ``seconds``, write its Observation."""
    return run_job(task, task_id, _probe_outputs, "probe")


def _probe_outputs(job: dict[str, Any]) -> JobResults:
    seconds = float(parameter(job, "seconds") or 0)
    time.sleep(min(max(seconds, 0.0), MAX_PROBE_SECONDS))
    key = next(i["value"] for i in job["identifier"] if i.get("system") == JOB_KEYS)
    return JobResults.of(probe_result(key))


probe_task = shared_task(
    name="workers.system.probe", bind=True, acks_late=True, max_retries=MAX_RETRIES
)(probe)


def resend(task: Any) -> dict[str, object]:
    """Send again the jobs whose message never reached, or was lost by, the broker."""
    runtime = worker_runtime()
    report = resend_pending(runtime.jobs, runtime.settings.job_resend_after_s)
    follow_ups = 0 if report.broker_down else resend_follow_ups(runtime.jobs)
    logger.info("pending jobs swept", extra={"sent": report.sent, "follow_ups": follow_ups})
    return {"sent": report.sent, "broker_down": report.broker_down, "follow_ups": follow_ups}


resend_task = shared_task(name="workers.system.resend_pending", bind=True)(resend)
