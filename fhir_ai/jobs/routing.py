"""Queue and task names: the one table shared by the web process and the workers."""

from __future__ import annotations

from typing import Final

IMAGING_QUEUE: Final = "imaging"
NLP_QUEUE: Final = "nlp"
DEFAULT_QUEUE: Final = "default"
QUEUE_NAMES: Final = (IMAGING_QUEUE, NLP_QUEUE, DEFAULT_QUEUE)

ANALYZE_STUDY: Final = "workers.imaging.analyze_study"
EXTRACT_DOCUMENT: Final = "workers.nlp.extract_document"
EXTRACT_TEXT: Final = "workers.nlp.extract_text"
PROBE: Final = "workers.system.probe"
RESEND_PENDING: Final = "workers.system.resend_pending"
DELIVER_NOTIFICATION: Final = "workers.notify.deliver"
WRITE_BACK: Final = "workers.notify.write_back"

#: The Celery task that runs each job type (``Task.code``), for re-sending stuck Tasks.
JOB_TASKS: Final = {
    "imaging-analysis": ANALYZE_STUDY,
    "nlp-extraction": EXTRACT_DOCUMENT,
    "fleet-probe": PROBE,
}

#: Task-name prefixes and the queue their tasks go to; anything else goes to ``default``.
ROUTES: Final = (("workers.imaging.", IMAGING_QUEUE), ("workers.nlp.", NLP_QUEUE))


def queue_for(task_name: str) -> str:
    """The queue a task is routed to, by its name's prefix."""
    for prefix, queue in ROUTES:
        if task_name.startswith(prefix):
            return queue
    return DEFAULT_QUEUE
