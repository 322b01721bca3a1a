"""``/readyz`` reports the database and (when configured) the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ai.app import create_app
from fhir_ai.broker import broker_reachable
from fhir_ai.errors import ServiceUnavailable
from tests.conftest import REDIS_URL, make_settings


def test_healthz(tmp_path: Path) -> None:
    client = create_app(make_settings(tmp_path)).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_without_broker_checks_database_only(tmp_path: Path) -> None:
    client = create_app(make_settings(tmp_path, broker_url=None)).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok"}}


def test_readyz_unreachable_broker_is_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, broker_url="redis://:secret@127.0.0.1:1/0")
    response = create_app(settings).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("failed: ")
    assert "secret" not in response.get_data(as_text=True)


def test_readyz_with_reachable_broker(tmp_path: Path) -> None:
    try:
        broker_reachable(REDIS_URL, timeout=1.0)
    except ServiceUnavailable:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    response = create_app(make_settings(tmp_path)).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok"}
