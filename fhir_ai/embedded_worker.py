"""The Celery worker that ``fhir-ai serve`` runs beside the web server in embedded mode.

It is a subprocess (``python -m celery -A workers.main worker``) so the web process never
imports the worker modules or their ML libraries.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from fhir_ai.metrics_multiprocess import MULTIPROC_ENV

logger = logging.getLogger("fhir_ai.embedded_worker")

EMBEDDED_QUEUES = ("imaging", "nlp", "default")
_STOP_TIMEOUT_S = 30.0


def worker_command(
    queues: Sequence[str] = EMBEDDED_QUEUES, loglevel: str = "INFO", pool: str = "solo"
) -> list[str]:
    """The command line of the embedded worker."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.main",
        "worker",
        "--queues",
        ",".join(queues),
        "--pool",
        pool,
        "--concurrency",
        "1",
        "--loglevel",
        loglevel,
        "--hostname",
        "embedded@%h",
    ]


def worker_environment(broker_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the broker URL set, without the
    web server's metrics folder (a worker keeps its own: workers.bootstrap)."""
    env = dict(os.environ if base is None else base)
    env["FHIR_AI_BROKER_URL"] = broker_url
    env.pop(MULTIPROC_ENV, None)
    return env


@contextmanager
def embedded_worker(broker_url: str, loglevel: str = "INFO") -> Iterator[subprocess.Popen[bytes]]:
    """Run the embedded worker for the block; stop it (SIGTERM, then SIGKILL) after.

    Only the process that started it stops it: a forked child (a gunicorn worker)
    unwinding through this block leaves it alone.
    """
    owner = os.getpid()
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        worker_command(loglevel=loglevel), env=worker_environment(broker_url)
    )
    logger.info("embedded worker started", extra={"worker_pid": process.pid})
    try:
        yield process
    finally:
        if os.getpid() == owner:
            stop_subprocess(process)


def stop_subprocess(process: subprocess.Popen[bytes], timeout: float = _STOP_TIMEOUT_S) -> None:
    """Ask ``process`` to stop (SIGTERM: Celery's warm shutdown), kill it after ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("embedded worker did not stop; killing it", extra={"pid": process.pid})
            process.kill()
            process.wait()
    logger.info(
        "embedded worker stopped", extra={"worker_pid": process.pid, "rc": process.returncode}
    )
