"""Worker Prometheus metrics, served by each worker on ``FHIR_AI_WORKER_METRICS_PORT``.

A prefork worker runs its tasks in child processes, so metrics use prometheus_client's
multiprocess mode: :func:`workers.bootstrap.prepare_process` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before prometheus_client is imported, the
children write their samples there and the parent serves their aggregate. A solo or
threads pool serves its own registry. Labels carry task names, queues, model names and
error types only: never ids or PHI.

* ``fhir_ai_worker_task_duration_seconds{task, outcome}`` histogram (outcome: the Celery
  state: success, failure, retry).
* ``fhir_ai_worker_queue_wait_seconds{queue}`` histogram: job sent -> task started (the
  sender stamps ``fhir_ai_sent_at`` in the message headers; clocks of different
  machines must agree).
* ``fhir_ai_worker_task_failures_total{task, reason}`` counter: exceptions (reason: the
  exception type) and jobs that ended their Task as failed (reason: the issue code).
* ``fhir_ai_worker_inference_seconds{model}`` and ``fhir_ai_worker_batch_size{model}``
  histograms: what :func:`observe_inference` is told by the imaging code per forward pass.
* ``fhir_ai_worker_gpu_memory_bytes{device}`` gauge: ``torch.cuda.memory_reserved`` after
  each task, summed over live processes, only once CUDA is initialised.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import multiprocess as prometheus_multiprocess

from fhir_ai.jobs.queue import SENT_AT_HEADER

logger = logging.getLogger("workers.metrics")

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_STARTED_ATTRIBUTE: Final = "fhir_ai_started"
DURATION_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WAIT_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """The metric objects of this process."""

    task_duration: Histogram
    queue_wait: Histogram
    failures: Counter
    inference: Histogram
    batch_size: Histogram
    gpu_memory: Gauge


def multiprocess() -> bool:
    """True when samples go through ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROC_ENV))


@cache
def serving_registry() -> CollectorRegistry:
    """The registry the metrics server renders (a per-process cache)."""
    registry = CollectorRegistry()
    if multiprocess():
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@cache
def worker_metrics() -> WorkerMetrics:
    """This process's metric objects (a per-process cache, built on first use)."""
    registry = None if multiprocess() else serving_registry()
    return WorkerMetrics(
        task_duration=Histogram(
            "fhir_ai_worker_task_duration_seconds", "Task run time, by task and outcome.",
            ("task", "outcome"), buckets=DURATION_BUCKETS, registry=registry,
        ),
        queue_wait=Histogram(
            "fhir_ai_worker_queue_wait_seconds", "Job sent -> task started, by queue.",
            ("queue",), buckets=WAIT_BUCKETS, registry=registry,
        ),
        failures=Counter(
            "fhir_ai_worker_task_failures_total", "Failed tasks and failed jobs.",
            ("task", "reason"), registry=registry,
        ),
        inference=Histogram(
            "fhir_ai_worker_inference_seconds", "One forward pass, by model.",
            ("model",), buckets=DURATION_BUCKETS, registry=registry,
        ),
        batch_size=Histogram(
            "fhir_ai_worker_batch_size", "Items in one forward pass, by model.",
            ("model",), buckets=BATCH_BUCKETS, registry=registry,
        ),
        gpu_memory=Gauge(
            "fhir_ai_worker_gpu_memory_bytes", "CUDA memory reserved by PyTorch, by device.",
            ("device",), registry=registry, multiprocess_mode="livesum",
        ),
    )  # fmt: skip


def observe_inference(model: str, batch_size: int, seconds: float) -> None:
    """Record one forward pass of ``model`` over ``batch_size`` items (imaging code)."""
    metrics = worker_metrics()
    metrics.inference.labels(model=model).observe(seconds)
    metrics.batch_size.labels(model=model).observe(batch_size)


def job_failed(task_name: str, issue_code: str) -> None:
    """Record a job that ended its Task as failed (bad input, time limit)."""
    worker_metrics().failures.labels(task=task_name, reason=issue_code).inc()


def task_started(task: Any) -> None:
    """At task start: the queue wait (from the sender's stamp) and the start time."""
    request = task.request
    setattr(request, _STARTED_ATTRIBUTE, time.perf_counter())
    sent_at = request.get(SENT_AT_HEADER) or (request.headers or {}).get(SENT_AT_HEADER)
    if isinstance(sent_at, int | float) and request.retries == 0:
        queue = (request.delivery_info or {}).get("routing_key") or "unknown"
        worker_metrics().queue_wait.labels(queue=queue).observe(max(0.0, time.time() - sent_at))


def task_finished(task: Any, state: str | None) -> None:
    """At task end: its duration by outcome, and the GPU memory it left reserved."""
    started = getattr(task.request, _STARTED_ATTRIBUTE, None)
    if isinstance(started, float):
        outcome = (state or "unknown").lower()
        duration = time.perf_counter() - started
        worker_metrics().task_duration.labels(task=task.name, outcome=outcome).observe(duration)
    _record_gpu_memory()


def task_raised(task_name: str, error: BaseException) -> None:
    """A task that raised (Celery's failure)."""
    worker_metrics().failures.labels(task=task_name, reason=type(error).__name__).inc()


def _record_gpu_memory() -> None:
    torch = sys.modules.get("torch")  # never import torch (nor initialise CUDA) here
    if torch is None or not torch.cuda.is_initialized():
        return
    for device in range(torch.cuda.device_count()):
        reserved = float(torch.cuda.memory_reserved(device))
        worker_metrics().gpu_memory.labels(device=str(device)).set(reserved)


def serve(port: int) -> int:
    """Serve the metrics on ``port`` (0: any free port); the port bound."""
    server, _thread = start_http_server(port, registry=serving_registry())
    bound = int(server.server_address[1])
    logger.info("worker metrics served", extra={"port": bound})
    return bound


def process_gone(pid: int) -> None:
    """Drop the live gauges of a child process that ended."""
    if multiprocess():
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
