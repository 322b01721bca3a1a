"""The jti replay cache follows the deployment: Redis when the broker is, else the database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from fhir_ai.cds.auth import replay_cache
from fhir_ai.security.replay import RedisReplayCache
from fhir_ai.settings import Settings
from fhir_ai.store.replay import SqlReplayCache


def test_replay_cache_is_redis_with_a_redis_broker_else_the_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with_redis = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/12")
    assert isinstance(replay_cache(with_redis, engine), RedisReplayCache)
    embedded = Settings(data_dir=tmp_path, broker_url=None)
    assert isinstance(replay_cache(embedded, engine), SqlReplayCache)
