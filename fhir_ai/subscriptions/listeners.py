"""What happens when a job completes: Subscription notifications and report write-back,
each queued as a ``default``-queue task (arguments: references only)."""

from __future__ import annotations

import logging
from typing import Any

from fhir_ai.errors import FhirAiError, ServiceUnavailable
from fhir_ai.fhir.service import FhirService
from fhir_ai.jobs import task_resource
from fhir_ai.jobs.queue import JobQueue
from fhir_ai.jobs.routing import DELIVER_NOTIFICATION, WRITE_BACK
from fhir_ai.settings import Settings
from fhir_ai.store.repository import ResourceStore
from fhir_ai.subscriptions.matching import matching_subscriptions

logger = logging.getLogger("fhir_ai.subscriptions")


def task_results(task: dict[str, Any]) -> list[str]:
    """The ``Type/id`` references a completed Task names as its outputs."""
    references = (o.get("valueReference", {}).get("reference") for o in task.get("output", []))
    return [ref for ref in references if isinstance(ref, str) and "/" in ref]


class ResultListeners:
    """A :data:`~fhir_ai.jobs.service.CompletionListener`: notifies and writes back."""

    def __init__(
        self, store: ResourceStore, fhir: FhirService, queue: JobQueue, settings: Settings
    ) -> None:
        self.store = store
        self.fhir = fhir
        self.queue = queue
        self.write_back = bool(settings.writeback_fhir_base_url)

    def __call__(self, task: dict[str, Any]) -> None:
        """Queue the notifications of the Task and its results, and their write-back."""
        results = task_results(task)
        references = [f"Task/{task['id']}", *results]
        try:
            with self.store.session(read_only=True) as session:
                sends = [
                    (DELIVER_NOTIFICATION, [subscription, reference])
                    for reference in references
                    for subscription in matching_subscriptions(session, self.fhir, reference)
                ]
        except FhirAiError:
            logger.exception("Subscriptions not evaluated", extra={"task_id": task["id"]})
            sends = []
        if self.write_back:
            sends += [(WRITE_BACK, [ref]) for ref in results if ref.startswith("DiagnosticReport/")]
        for task_name, args in sends:
            try:
                self.queue.send(task_name, args)
            except ServiceUnavailable:
                logger.warning("follow-up not queued; the pending-jobs sweep sends it")
                self._mark_pending(task["id"])
                return

    def _mark_pending(self, task_id: str) -> None:
        """Tag the Task so the sweep runs these follow-ups again (they are idempotent)."""
        with self.store.session() as session:
            task = session.read("Task", task_id).content or {}
            session.update(task_resource.with_follow_up_pending(task, True), task_id)
