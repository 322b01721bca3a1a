"""``fhir-ai serve`` with nothing configured: embedded database, broker and worker."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from tests.process_helpers import FHIR_AI, clean_env, free_port, tail, wait_for

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
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            returncode = serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
            raise
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
