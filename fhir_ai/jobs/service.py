"""Submitting jobs and moving their Tasks through their states.

A job is submitted once per idempotency key: submitting the same key again returns the
existing Task (a failed one is queued again). The Task is committed before the job is
queued, so a worker never sees a job without its Task; a job queued twice (redelivery)
finds its Task already completed and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fhir_ai.errors import NotFound, ServiceUnavailable
from fhir_ai.fhir.service import FhirService
from fhir_ai.jobs import task_resource
from fhir_ai.jobs.queue import JobQueue
from fhir_ai.jobs.task_resource import ACTIVE_STATES, JOB_KEYS, JobRequest
from fhir_ai.store.repository import ResourceStore

logger = logging.getLogger("fhir_ai.jobs")

#: Resolves relative references in search criteria; the store never needs the real one.
_LOCAL_BASE = "http://localhost/fhir"


@dataclass(frozen=True, slots=True)
class SubmittedJob:
    """The Task of a submitted job and whether this submission queued it."""

    task_id: str
    status: str
    queued: bool


#: Called with each Task just committed as completed (after the commit): notifications,
#: write-back. A listener must not raise for its own failures; it logs them.
CompletionListener = Callable[[dict[str, Any]], None]


class JobService:
    """Jobs as FHIR Tasks in the store, queued on the job queue."""

    def __init__(
        self,
        store: ResourceStore,
        fhir: FhirService,
        queue: JobQueue,
        listeners: Sequence[CompletionListener] = (),
    ) -> None:
        self.store = store
        self.fhir = fhir
        self.queue = queue
        self.listeners = tuple(listeners)

    def submit(self, request: JobRequest) -> SubmittedJob:
        """Create (or find) the Task for ``request`` and queue it unless already active/done.

        If the broker is down the Task stays ``requested``, marked not queued, and
        :class:`ServiceUnavailable` is raised: submitting again (or ``resend``) queues it.
        """
        with self.store.session() as session:
            session.lock(request.key)
            found = self.fhir.matching_ids(
                session, "Task", f"identifier={JOB_KEYS}|{quote(request.key, safe='')}", _LOCAL_BASE
            )
            if found:
                task = session.read("Task", found[0]).content or {}
                if task.get("status") != "failed" and not task_resource.unqueued(task):
                    return SubmittedJob(found[0], str(task.get("status")), queued=False)
                stored = session.update(task_resource.requeued(task), found[0]).stored
            else:
                stored = session.create(request.task())
        self._send(request.task_name, stored.id)
        return SubmittedJob(stored.id, "requested", queued=True)

    def _send(self, task_name: str, task_id: str) -> None:
        try:
            self.queue.send(task_name, [task_id])
        except ServiceUnavailable:
            with self.store.session() as session:
                task = self._task(session, task_id)
                session.update(task_resource.not_queued(task), task_id)
            raise

    def start(self, task_id: str, worker: str) -> dict[str, Any] | None:
        """Mark the Task in progress; None when it is already finished (a redelivery)."""
        with self.store.session() as session:
            task = self._task(session, task_id)
            if task.get("status") not in ACTIVE_STATES:
                logger.info("job already finished", extra={"task_id": task_id})
                return None
            return session.update(task_resource.started(task, worker), task_id).stored.content

    def notify_completed(self, task_id: str) -> None:
        """Tell the listeners (notifications, write-back) that the Task completed (a job
        completes its Task with its results: :mod:`fhir_ai.jobs.completion`)."""
        task = self.task(task_id)
        for listener in self.listeners:
            listener({**task, "id": task_id})

    def fail(self, task_id: str, reason: str, issue_code: str = "processing") -> None:
        """Mark the Task failed with ``reason`` (never PHI: a reason about the input's form)."""
        with self.store.session() as session:
            task = self._task(session, task_id)
            session.update(task_resource.failed(task, reason, issue_code), task_id)

    def task(self, task_id: str) -> dict[str, Any]:
        """The current Task."""
        with self.store.session(read_only=True) as session:
            return self._task(session, task_id)

    @staticmethod
    def _task(session: Any, task_id: str) -> dict[str, Any]:
        content = session.read("Task", task_id).content
        if content is None:
            raise NotFound(f"Task/{task_id} not found")
        return dict(content)
