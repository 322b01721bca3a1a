"""Re-sending jobs whose Task is still ``requested`` but whose message is not on the queue.

Two cases: the broker was down when the job was submitted (the Task is marked
``not-queued``), or the message was lost afterwards (a broker that lost its data): such a
Task stays ``requested`` past ``job_resend_after_s``. ``fhir-ai jobs resend`` and the
sweep a worker runs when it starts send them again. Each Task is claimed under its job
key's lock first, so two sweepers do not both send it; a job sent twice anyway is
harmless (its Task finished, the second delivery writes nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.jobs import task_resource
from fhir_ai.jobs.routing import JOB_TASKS
from fhir_ai.jobs.service import JobService
from fhir_ai.jobs.task_resource import JOB_KEYS, JOB_PARAMETERS, NOT_QUEUED
from fhir_ai.store.repository import StoreSession

logger = logging.getLogger("fhir_ai.jobs")
_BATCH = 200


@dataclass(frozen=True, slots=True)
class ResendReport:
    """How many Tasks were sent again, and whether the broker stopped the sweep."""

    sent: int
    broker_down: bool


def resend_pending(jobs: JobService, stale_after_s: float | None) -> ResendReport:
    """Send again every ``not-queued`` Task and, with ``stale_after_s``, every Task
    ``requested`` for longer than that. Stops at the first broker failure."""
    sent = 0
    cutoff = _cutoff(stale_after_s)
    while True:
        batch = _pending_ids(jobs, cutoff)
        if not batch:
            return ResendReport(sent, broker_down=False)
        progress = 0
        for task_id in batch:
            try:
                progress += _resend_one(jobs, task_id, cutoff)
            except ServiceUnavailable:
                return ResendReport(sent + progress, broker_down=True)
        sent += progress
        if not progress:  # every Task was claimed by another sweeper or is unknown
            return ResendReport(sent, broker_down=False)


def resend_follow_ups(jobs: JobService) -> int:
    """Run the completion follow-ups (notifications, write-back) again for each Task tagged
    follow-up-pending; how many Tasks were taken up. Each is untagged first, under its job
    key's lock, so two sweepers do not both take it; a listener that fails again re-tags it.
    """
    criteria = f"_tag={JOB_PARAMETERS}|{task_resource.FOLLOW_UP_PENDING}&_count={_BATCH}"
    with jobs.store.session(read_only=True) as session:
        query = jobs.fhir.parse_search("Task", parse_qsl(criteria), strict=True)
        found = [r.id for r in session.search(query, "").matches]
    taken = 0
    for task_id in found:
        with jobs.store.session() as session:
            task = session.read("Task", task_id).content or {}
            key = next((i["value"] for i in task.get("identifier", [])), task_id)
            session.lock(key)
            task = session.read("Task", task_id).content or {}
            tags = task.get("meta", {}).get("tag", [])
            if not any(t.get("code") == task_resource.FOLLOW_UP_PENDING for t in tags):
                continue
            session.update(task_resource.with_follow_up_pending(task, False), task_id)
        jobs.notify_completed(task_id)
        taken += 1
    return taken


def _cutoff(stale_after_s: float | None) -> str | None:
    if stale_after_s is None:
        return None
    moment = datetime.now(UTC) - timedelta(seconds=stale_after_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pending_ids(jobs: JobService, cutoff: str | None) -> list[str]:
    queries = [[("business-status", f"{JOB_PARAMETERS}|{NOT_QUEUED}")]]
    if cutoff is not None:
        queries.append([("modified", f"lt{cutoff}")])
    found: dict[str, None] = {}
    with jobs.store.session(read_only=True) as session:
        for extra in queries:
            params = [("status", "requested"), *extra, ("_count", str(_BATCH))]
            query = jobs.fhir.parse_search("Task", params, strict=True)
            found.update((m.id, None) for m in session.search(query, "").matches)
    return list(found)


def _resend_one(jobs: JobService, task_id: str, cutoff: str | None) -> int:
    """Claim the Task (mark it queued now) and send it; 0 when it needs nothing."""
    with jobs.store.session() as session:
        task_name = _claim(session, jobs, task_id, cutoff)
    if task_name is None:
        return 0
    try:
        jobs.queue.send(task_name, [task_id])
    except ServiceUnavailable:
        with jobs.store.session() as session:
            task = session.read("Task", task_id).content or {}
            session.update(task_resource.not_queued(task), task_id)
        raise
    logger.info("job sent again", extra={"task_id": task_id, "task": task_name})
    return 1


def _claim(session: StoreSession, jobs: JobService, task_id: str, cutoff: str | None) -> str | None:
    first = session.read("Task", task_id).content or {}
    keys = [i.get("value") for i in first.get("identifier", []) if i.get("system") == JOB_KEYS]
    session.lock(str(keys[0]) if keys else f"Task/{task_id}")
    task = session.read("Task", task_id).content or {}
    stale = cutoff is not None and str(task.get("lastModified", "")) < cutoff
    if task.get("status") != "requested" or not (task_resource.unqueued(task) or stale):
        return None
    codes = [c.get("code") for c in task.get("code", {}).get("coding", [])]
    task_name = next((JOB_TASKS[c] for c in codes if c in JOB_TASKS), None)
    if task_name is None:
        logger.warning("requested Task of an unknown job type", extra={"task_id": task_id})
        return None
    session.update(task_resource.requeued(task), task_id)
    return task_name
