"""fleet status against real Redis, worker heartbeats, worker metrics, delayed cards."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from fhir_ai import worker_health
from fhir_ai.broker import broker_reachable
from fhir_ai.errors import ServiceUnavailable
from fhir_ai.fleet import FleetStatus, WorkerState, queue_depths, render_table
from fhir_ai.health import BrokerStatus
from fhir_ai.recommend.imaging_cards import pending_card
from tests.conftest import REDIS_URL
from tests.process_helpers import clean_env


@pytest.fixture
def redis_url() -> str:
    try:
        broker_reachable(REDIS_URL, timeout=1.0)
    except ServiceUnavailable:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL


def test_queue_depths_count_waiting_and_reserved_messages(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    before, _ = queue_depths(redis_url)
    client.lpush("nlp", b"m1", b"m2")
    client.lpush("nlp\x06\x163", b"m3")
    try:
        after, reserved = queue_depths(redis_url)
        assert after["nlp"] - before["nlp"] == 3
        assert set(after) == {"imaging", "nlp", "default"} and reserved >= 0
    finally:
        client.lrem("nlp", 0, b"m1")
        client.lrem("nlp", 0, b"m2")
        client.lrem("nlp\x06\x163", 0, b"m3")


def test_status_table_names_what_failed() -> None:
    status = FleetStatus(
        queues={"imaging": 3, "nlp": 0, "default": 1},
        reserved=1,
        workers=[WorkerState("imaging@h1", ["imaging"], 1)],
        tasks={"requested": 3, "failed": 1},
        errors={"store": "OperationalError"},
    )
    table = render_table(status)
    assert "imaging@h1" in table and "requested=3" in table
    assert "! store unavailable (OperationalError)" in table
    assert status.as_json()["workers"][0]["active"] == 1


def test_heartbeat_file_age(tmp_path: Path) -> None:
    node = worker_health.node_name("imaging@%h")
    assert worker_health.heartbeat_age(tmp_path, node) is None
    worker_health.beat(tmp_path, node)
    age = worker_health.heartbeat_age(tmp_path, node)
    assert age is not None and age < 60
    worker_health.forget(tmp_path, node)
    assert worker_health.heartbeat_age(tmp_path, node) is None


def test_worker_healthcheck_command(tmp_path: Path) -> None:
    env = clean_env(FHIR_AI_DATA_DIR=str(tmp_path), FHIR_AI_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "fhir_ai.cli", "worker", "--healthcheck", "--hostname", "x@%h"]
    assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 1
    worker_health.beat(tmp_path / "heartbeats", worker_health.node_name("x@%h"))
    assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0


def test_broker_status_is_cached_and_says_down() -> None:
    status = BrokerStatus("redis://127.0.0.1:1/0", ttl_s=60)
    assert status() is False and status() is False
    assert BrokerStatus(None)() is True
    assert "delayed" in pending_card(2, delayed=True).summary
    assert "still running" in pending_card(1).summary


def test_worker_metrics_record_tasks_and_inference() -> None:
    from prometheus_client import generate_latest

    from workers import metrics

    sent = time.time() - 0.5
    task = SimpleNamespace(
        name="workers.system.probe",
        request=SimpleNamespace(
            get=lambda key: sent if key == "fhir_ai_sent_at" else None,
            headers=None,
            retries=0,
            delivery_info={"routing_key": "default"},
        ),
    )
    metrics.task_started(task)
    metrics.task_finished(task, "SUCCESS")
    metrics.job_failed("workers.nlp.extract_document", f"invalid-{uuid.uuid4().hex[:4]}")
    metrics.observe_inference("pneumonia-cxr", 16, 0.2)
    text = generate_latest(metrics.serving_registry()).decode()
    duration = "fhir_ai_worker_task_duration_seconds_count"
    assert f'{duration}{{outcome="success",task="workers.system.probe"}}' in text
    assert 'fhir_ai_worker_queue_wait_seconds_count{queue="default"}' in text
    assert 'fhir_ai_worker_batch_size_sum{model="pneumonia-cxr"} 16.0' in text
