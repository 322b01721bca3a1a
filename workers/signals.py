"""Celery signal handlers of a worker: metrics, heartbeat file, the start-up sweep.

Connected once per process by :func:`install` (``dispatch_uid`` keeps it idempotent).
The handlers of the main process (``worker_init``, ``worker_ready``, heartbeats) touch
no database and no CUDA: children are forked from it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Celery, signals
from celery.worker.control import inspect_command
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from fhir_ai import worker_health
from fhir_ai.heap import freeze_startup_objects
from fhir_ai.jobs.routing import DEFAULT_QUEUE, RESEND_PENDING
from fhir_ai.settings import Settings
from workers import metrics
from workers.process_state import process_state

logger = logging.getLogger("workers.signals")


class _SweepClock:
    """When this worker last asked for a pending-jobs sweep (its own, per process)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_s

    def sent(self) -> None:
        self.last = time.monotonic()


def install(app: Celery, settings: Settings) -> None:
    """Connect the worker's signal handlers for ``app`` configured by ``settings``."""
    heartbeats = settings.heartbeat_dir()

    def on_prerun(task: Any = None, **_: Any) -> None:
        if task is not None:
            metrics.task_started(task)

    def on_postrun(task: Any = None, state: str | None = None, **_: Any) -> None:
        if task is not None:
            metrics.task_finished(task, state)

    def on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        if sender is not None and exception is not None:
            metrics.task_raised(sender.name, exception)

    def on_init(**_: Any) -> None:
        if settings.worker_metrics_port is not None:
            metrics.serve(settings.worker_metrics_port)

    sweeps = _SweepClock(settings.job_resend_after_s)

    def send_sweep() -> None:
        try:
            app.send_task(RESEND_PENDING, queue=DEFAULT_QUEUE, routing_key=DEFAULT_QUEUE)
        except (KombuOperationalError, RedisError, OSError) as error:  # the next beat retries
            logger.warning("pending jobs sweep not sent", extra={"error": type(error).__name__})
            return
        sweeps.sent()

    def on_ready(sender: Any = None, **_: Any) -> None:
        freeze_startup_objects()  # the threads and solo pools run jobs in this process
        worker_health.beat(heartbeats, sender.hostname)
        send_sweep()
        logger.info("worker ready; pending jobs sweep sent")

    def on_heartbeat(sender: Any = None, **_: Any) -> None:
        worker_health.beat(heartbeats, sender.eventer.hostname)
        if sweeps.due():  # every job_resend_after_s: Tasks left requested are queued again
            send_sweep()

    def on_process_init(**_: Any) -> None:
        freeze_startup_objects()  # a prefork pool process, before its first job

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        worker_health.forget(heartbeats, str(getattr(sender, "hostname", sender)))

    def on_child_exit(pid: int | None = None, **_: Any) -> None:
        metrics.process_gone(pid or os.getpid())

    # Answered by the main process (pool processes: the workers.system.process_state task).
    inspect_command(name="fhir_ai_process")(_main_process_state)

    for signal, handler in (
        (signals.task_prerun, on_prerun),
        (signals.task_postrun, on_postrun),
        (signals.task_failure, on_failure),
        (signals.worker_init, on_init),
        (signals.worker_ready, on_ready),
        (signals.worker_process_init, on_process_init),
        (signals.heartbeat_sent, on_heartbeat),
        (signals.worker_shutdown, on_shutdown),
        (signals.worker_process_shutdown, on_child_exit),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"fhir_ai.{handler.__name__}")


def _main_process_state(state: Any) -> dict[str, Any]:
    """The ``fhir_ai_process`` inspect command: :func:`process_state` of the main process."""
    return process_state()
