"""Helpers for the fleet tests: a private Redis server, worker processes, a webhook receiver."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fhir_ai.broker import broker_reachable
from fhir_ai.errors import ServiceUnavailable
from tests.process_helpers import clean_env, free_port, wait_for

REPO = Path(__file__).resolve().parents[1]


class RedisServer:
    """A redis-server of this test only (append-only file, fsync always), restartable."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server") or "redis-server"
        command = [
            executable, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--maxmemory-policy", "noeviction",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        assert wait_for(self.up, timeout=20), "redis-server did not start"

    def up(self) -> bool:
        try:
            broker_reachable(self.url, timeout=0.5)
        except ServiceUnavailable:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(timeout=30)
        self.process = None


@dataclass
class Worker:
    """A ``celery -A workers.main worker`` process group (parent and prefork children)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole worker: parent and children, no chance to requeue anything."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the parent (Celery's warm shutdown) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.process.returncode


def worker_env(broker_url: str, database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fleet-test worker: short time limits and visibility timeout."""
    return clean_env(
        FHIR_AI_BROKER_URL=broker_url,
        FHIR_AI_DATABASE_URL=database_url,
        FHIR_AI_DATA_DIR=str(data_dir),
        FHIR_AI_LOG_LEVEL="INFO",
        FHIR_AI_LOG_FORMAT="text",
        FHIR_AI_TASK_TIME_LIMIT_S="20",
        FHIR_AI_BROKER_VISIBILITY_TIMEOUT_S="25",
        FHIR_AI_SUBSCRIPTION_RETRY_S="0.5",
        PYTHONPATH=str(REPO),
        **extra,
    )


def start_worker(
    env: dict[str, str],
    name: str,
    queues: str,
    directory: Path,
    concurrency: int = 1,
    pool: str = "prefork",
) -> Worker:
    """Start a worker (``pool``: prefork, threads, solo) consuming ``queues`` as
    ``<name>@localhost``."""
    node = f"{name}@localhost"
    log = directory / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "workers.main", "worker",
        "--queues", queues, "--pool", pool, "--concurrency", str(concurrency),
        "--hostname", node, "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Worker(node, process, log)


@dataclass
class Receiver:
    """A rest-hook endpoint on localhost recording each POST; can go down and come back."""

    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(
                        {
                            "authorization": self.headers.get("Authorization"),
                            "content_type": self.headers.get("Content-Type"),
                            "body": json.loads(body) if body else None,
                        }
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ids(self) -> list[str]:
        with self.lock:
            return [str((r["body"] or {}).get("id")) for r in self.received]
