"""A private broker, a shared SQLite store and real worker processes for job tests."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from fhir_ai.broker import embedded_broker
from fhir_ai.settings import Settings
from tests.conftest import build_app, make_settings
from tests.process_helpers import FHIR_AI, clean_env, stop, tail

TASK_TIMEOUT_S = 120.0


@dataclass
class JobStack:
    """An app and its settings, wired to a private broker that worker processes consume."""

    app: Flask
    settings: Settings
    broker_url: str
    tmp: Path

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def worker_env(self) -> dict[str, str]:
        return clean_env(
            FHIR_AI_BROKER_URL=self.broker_url,
            FHIR_AI_DATA_DIR=str(self.settings.data_dir),
            FHIR_AI_DATABASE_URL=self.settings.resolved_database_url(),
            FHIR_AI_LOG_LEVEL="INFO",
        )

    @contextmanager
    def worker(self, queues: str, name: str = "w") -> Iterator[subprocess.Popen[bytes]]:
        """A real ``fhir-ai worker`` process for the block (stopped with SIGTERM after)."""
        log = self.tmp / f"worker-{name}.log"
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@localhost"
        command = [FHIR_AI, "worker", "--queues", queues, "--pool", "solo", "--hostname", hostname]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, env=self.worker_env(), stdout=out, stderr=subprocess.STDOUT
            )
        try:
            yield process
        finally:
            stop(process, timeout=60)

    def log(self, name: str = "w") -> str:
        return tail(self.tmp / f"worker-{name}.log")

    def wait_task(self, task_id: str, timeout: float = TASK_TIMEOUT_S) -> dict[str, Any]:
        """The Task once it is completed or failed (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.client.get(f"/fhir/Task/{task_id}").get_json()
            if task["status"] in ("completed", "failed"):
                return dict(task)
            time.sleep(0.5)
        raise AssertionError(f"Task/{task_id} still {task['status']} after {timeout:g} s")


@contextmanager
def job_stack(tmp: Path, **overrides: object) -> Iterator[JobStack]:
    """An app on a SQLite file with a private embedded broker (no other test's jobs)."""
    base = make_settings(tmp)
    with embedded_broker(base) as url:
        settings = make_settings(tmp, broker_url=url, **overrides)
        yield JobStack(build_app(settings), settings, url, tmp)


@contextmanager
def running_stack(tmp: Path, queues: str, **overrides: object) -> Iterator[JobStack]:
    """:func:`job_stack` with a worker consuming ``queues`` for the block."""
    with job_stack(tmp, **overrides) as stack, stack.worker(queues):
        yield stack
