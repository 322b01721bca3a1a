"""``fhir-ai serve``: with nothing configured (embedded database, broker and worker), and
its request metrics adding up across its gunicorn worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL
from tests.process_helpers import FHIR_AI, clean_env, free_port, stop, tail, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def test_serve_embedded_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = clean_env(FHIR_AI_DATA_DIR=str(data_dir), FHIR_AI_LOG_FORMAT="text")
    command = [FHIR_AI, "serve", "--port", str(port), "--workers", "1", "--threads", "2"]
    with log.open("wb") as out:
        serve = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    children: list[psutil.Process] = []
    try:
        assert wait_for(lambda: answers(f"{base}/healthz") or serve.poll() is not None, 90)
        assert serve.poll() is None, tail(log)

        children = psutil.Process(serve.pid).children(recursive=True)
        workers = [p for p in children if "celery" in " ".join(p.cmdline())]
        brokers = [p for p in children if "redis-server" in p.name()]
        assert len(workers) == 1, tail(log)
        assert len(brokers) == 1, tail(log)
        # The web processes share a metrics folder; the worker keeps its metrics apart.
        assert (data_dir / "prometheus-multiproc").is_dir()
        assert "PROMETHEUS_MULTIPROC_DIR" not in workers[0].environ()

        status, body = get(f"{base}/readyz")
        assert status == 200, body
        assert json.loads(body) == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}

        status, body = get(f"{base}/fhir/metadata")
        assert status == 200, body
        assert json.loads(body)["resourceType"] == "CapabilityStatement"

        text = log.read_text(errors="replace")
        assert "database: sqlite:///" in text
        assert "broker: embedded redis" in text
        assert "worker: embedded subprocess" in text
        assert wait_for(lambda: "embedded@" in log.read_text(errors="replace"), 60), tail(log)
    finally:
        try:
            returncode = stop(serve, timeout=60)
        finally:
            _, alive = psutil.wait_procs(children, timeout=10)
            for process in alive:
                process.kill()
    assert returncode == 0, tail(log)
    assert alive == [], f"left running: {alive}\n{tail(log)}"
    assert (data_dir / "fhir-ai.sqlite3").exists()
    assert (data_dir / "broker.rdb").exists()
    text = log.read_text(errors="replace")
    assert "embedded worker stopped" in text
    assert "embedded broker stopped" in text


HEALTHZ = (("method", "GET"), ("route", "/healthz"), ("status", "200"))


def _healthz_count(families: Iterable[Metric]) -> float:
    """The number of answered ``GET /healthz`` in metric families (0 when absent)."""
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "fhir_ai_http_request_duration_seconds_count"
        and tuple(sorted(sample.labels.items())) == tuple(sorted(HEALTHZ))
    )


def _scrape(base: str) -> tuple[float, float]:
    """(answered ``GET /healthz``, requests in progress) on one scrape of ``/metrics``."""
    status, body = get(f"{base}/metrics")
    assert status == 200, body
    families = list(text_string_to_metric_families(body.decode()))
    in_progress = [
        s.value
        for f in families
        for s in f.samples
        if s.name == "fhir_ai_http_requests_in_progress"
    ]
    return _healthz_count(families), sum(in_progress)


def _per_process_healthz(folder: Path, pids: list[int]) -> dict[int, float]:
    """Answered ``GET /healthz`` per server process, read from its own sample file."""
    counts = {}
    for pid in pids:
        files = [str(f) for f in folder.glob(f"histogram_{pid}.db")]
        counts[pid] = _healthz_count(MultiProcessCollector.merge(files)) if files else 0.0
    return counts


def _stale_samples(folder: Path) -> list[Path]:
    """1,000 ``GET /healthz`` left in ``folder`` by an earlier run (a process now gone)."""
    folder.mkdir(parents=True)
    script = (
        "from prometheus_client import Histogram\n"
        "h = Histogram('fhir_ai_http_request_duration_seconds', 'x', "
        "('method', 'route', 'status'))\n"
        "for _ in range(1000): h.labels('GET', '/healthz', '200').observe(0.001)\n"
    )
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(folder))
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    stale = list(folder.glob("histogram_*.db"))
    assert stale
    return stale


def _hold_a_request(port: int) -> socket.socket:
    """A POST whose body never finishes arriving: its request stays in progress."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{"
    )
    return sock


def test_serve_metrics_add_up_across_gunicorn_workers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    folder = data_dir / "prometheus-multiproc"
    stale = _stale_samples(folder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = clean_env(
        FHIR_AI_DATA_DIR=str(data_dir),
        FHIR_AI_LOG_FORMAT="text",
        FHIR_AI_BROKER_URL=REDIS_URL,  # an external broker: no embedded broker or worker
        FHIR_AI_FHIR_AUTH="off",
    )
    command = [FHIR_AI, "serve", "--port", str(port), "--workers", "2", "--threads", "2"]
    with log.open("wb") as out:
        serve = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    held: socket.socket | None = None
    try:
        assert wait_for(lambda: answers(f"{base}/readyz") or serve.poll() is not None, 90)
        assert serve.poll() is None, tail(log)
        # /readyz may be answered by the first worker before the second has booted
        arbiter = psutil.Process(serve.pid)
        assert wait_for(lambda: len(arbiter.children()) == 2, 60), tail(log)
        workers = [p.pid for p in arbiter.children()]
        assert not any(f.exists() for f in stale)  # the folder was made afresh

        # Concurrent requests until both gunicorn workers have answered some.
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(20):
                statuses = list(pool.map(lambda _: get(f"{base}/healthz")[0], range(40)))
                assert statuses == [200] * 40
                sent += 40
                if all(_per_process_healthz(folder, workers).values()):
                    break
        per_process = _per_process_healthz(folder, workers)
        assert all(per_process.values()) and sum(per_process.values()) == sent, per_process

        # Whichever worker answers the scrape, it counts every process's requests (and
        # none of the stale run's: the folder was emptied at start).
        for _ in range(10):
            assert _scrape(base) == (sent, 1)

        held = _hold_a_request(port)
        assert wait_for(lambda: _scrape(base)[1] == 2, 15), "the held request is not counted"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # gunicorn's master reaps them and starts others
        assert wait_for(lambda: _replaced(serve.pid, workers) and answers(f"{base}/healthz"), 60)
        sent += 1
        # The dead workers' counts remain; their requests in progress do not (child_exit).
        assert wait_for(lambda: _scrape(base) == (sent, 1), 15), (_scrape(base), tail(log))
    finally:
        if held is not None:
            held.close()
        returncode = stop(serve, timeout=60)
    assert returncode == 0, tail(log)


def _replaced(master: int, dead: list[int]) -> bool:
    children = [p.pid for p in psutil.Process(master).children()]
    return len(children) == 2 and not set(children) & set(dead)
