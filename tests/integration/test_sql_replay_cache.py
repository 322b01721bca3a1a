"""The database jti replay cache (servers without Redis), on both backends."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.store.replay import SqlReplayCache
from fhir_ai.store.schema import jwt_replay

pytestmark = pytest.mark.integration
NOW = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def _rows(app: Flask) -> int:
    with app.extensions["fhir_ai.engine"].connect() as connection:
        return int(connection.execute(select(func.count()).select_from(jwt_replay)).scalar_one())


def test_a_jti_is_accepted_once_until_it_expires(backend_app: Flask) -> None:
    clock = Clock()
    cache = SqlReplayCache(backend_app.extensions["fhir_ai.engine"], clock=clock)
    jti = uuid.uuid4().hex
    assert cache.seen_before("https://ehr.example", jti, NOW + 300) is False
    assert cache.seen_before("https://ehr.example", jti, NOW + 300) is True
    assert cache.seen_before("https://other.example", jti, NOW + 300) is False  # per issuer
    clock.now = NOW + 301  # the token has expired: its jti may be recorded again
    assert cache.seen_before("https://ehr.example", jti, NOW + 900) is False
    assert cache.seen_before("https://ehr.example", jti, NOW + 900) is True


def test_expired_rows_are_purged(backend_app: Flask) -> None:
    clock = Clock()
    engine = backend_app.extensions["fhir_ai.engine"]
    cache = SqlReplayCache(engine, purge_interval_s=0, clock=clock)
    for _ in range(3):
        cache.seen_before("https://ehr.example", uuid.uuid4().hex, NOW + 10)
    before = _rows(backend_app)
    clock.now = NOW + 3600
    cache.seen_before("https://ehr.example", uuid.uuid4().hex, NOW + 3900)
    assert _rows(backend_app) <= before - 2  # the three expired rows went, one came


def test_concurrent_replays_pass_once(backend_app: Flask) -> None:
    cache = SqlReplayCache(backend_app.extensions["fhir_ai.engine"])
    jti = uuid.uuid4().hex
    results: list[bool] = []

    def call() -> None:
        results.append(cache.seen_before("https://ehr.example", jti, 2**40))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True, True, True, True, True]


def test_a_broken_database_fails_closed(tmp_path: Path) -> None:
    cache = SqlReplayCache(create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}"))
    with pytest.raises(ServiceUnavailable):
        cache.seen_before("https://ehr.example", "jti", NOW)
