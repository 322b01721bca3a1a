"""A real worker subprocess answers ``workers.system.ping`` sent by name."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from fhir_ai.broker import broker_reachable, embedded_broker
from fhir_ai.errors import ServiceUnavailable
from fhir_ai.settings import Settings
from tests.conftest import REDIS_URL
from tests.process_helpers import FHIR_AI, clean_env, stop, tail
from workers.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RESULT_TIMEOUT_S = 60


@pytest.fixture
def redis_url() -> str:
    try:
        broker_reachable(REDIS_URL, timeout=1.0)
    except ServiceUnavailable as error:
        pytest.skip(
            f"Redis not reachable at {REDIS_URL} ({error.message}); set FHIR_AI_TEST_REDIS_URL"
        )
    return REDIS_URL


def ping_through_worker(broker_url: str, tmp_path: Path) -> None:
    """Start ``fhir-ai worker``, send ping by name, check the answer, stop the worker."""
    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log = tmp_path / "worker.log"
    env = clean_env(
        FHIR_AI_BROKER_URL=broker_url, FHIR_AI_DATA_DIR=str(tmp_path), FHIR_AI_LOG_LEVEL="INFO"
    )
    command = [FHIR_AI, "worker", "--queues", "default", "--pool", "solo", "--hostname", hostname]
    with log.open("wb") as out:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = make_celery(Settings(broker_url=broker_url, data_dir=tmp_path))
    try:
        result = app.send_task("workers.system.ping")
        try:
            answer = result.get(timeout=RESULT_TIMEOUT_S)
        except Exception as error:
            pytest.fail(f"no answer from worker ({type(error).__name__}):\n{tail(log)}")
        assert answer == {"pong": True, "worker": hostname}
        assert result.status == "SUCCESS"
        result.forget()
    finally:
        returncode = stop(worker)
        app.close()
    assert returncode == 0, tail(log)
    assert "Warm shutdown" in log.read_text(errors="replace")


def test_roundtrip_with_redis(redis_url: str, tmp_path: Path) -> None:
    ping_through_worker(redis_url, tmp_path)


def test_roundtrip_with_embedded_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.embedded_broker()
    with embedded_broker(settings) as url:
        assert url.startswith("redis+socket://")
        ping_through_worker(url, tmp_path)
    assert (tmp_path / "broker.rdb").exists()
    with pytest.raises(ServiceUnavailable):
        broker_reachable(url, timeout=1.0)
