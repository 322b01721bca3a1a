"""The jti replay cache follows the deployment: Redis when the broker is, else the database."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from fhir_ai.cds.auth import replay_cache
from fhir_ai.errors import ServiceUnavailable
from fhir_ai.security.replay import RedisReplayCache
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine, create_replay_engine, upgrade_schema
from fhir_ai.store.replay import SqlReplayCache
from fhir_ai.store.schema import jwt_replay


def test_replay_cache_is_redis_with_a_redis_broker_else_the_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with_redis = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/12")
    assert isinstance(replay_cache(with_redis, engine), RedisReplayCache)
    embedded = Settings(data_dir=tmp_path, broker_url=None)
    assert isinstance(replay_cache(embedded, engine), SqlReplayCache)


def test_on_a_sqlite_file_the_replay_cache_has_a_file_of_its_own(tmp_path: Path) -> None:
    """Shared by every process of the server (each opens it), apart from the application's
    tables (whose write lock the background writer holds for its batches)."""
    settings = Settings(data_dir=tmp_path, broker_url=None)
    engine = create_db_engine(settings)
    upgrade_schema(engine)
    first, second = (
        replay_cache(settings, engine),
        replay_cache(settings, create_db_engine(settings)),
    )
    expires = int(time.time()) + 300
    assert first.seen_before("https://ehr.example", "jti-1", expires) is False
    assert second.seen_before("https://ehr.example", "jti-1", expires) is True
    assert (tmp_path / "fhir-ai.jti.sqlite3").is_file()
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(jwt_replay)).scalar() == 0
    first.close()
    second.close()
    engine.dispose()


def test_an_in_memory_database_keeps_the_replay_table_in_the_application_engine() -> None:
    settings = Settings(database_url="sqlite:///:memory:", broker_url=None)
    engine = create_db_engine(settings)
    assert create_replay_engine(settings, engine) is engine


def test_a_replay_write_waits_for_another_process_lock_then_fails_closed(
    tmp_path: Path,
) -> None:
    """Another process holding the file's write lock (here a raw connection) delays a jti
    write until it lets go; one that never lets go gives 503 (fail closed)."""
    settings = Settings(data_dir=tmp_path, broker_url=None)
    engine = create_db_engine(settings)
    replay_engine = create_replay_engine(settings, engine, lock_wait_ms=5000)
    hasty_engine = create_replay_engine(settings, engine, lock_wait_ms=50)
    patient = SqlReplayCache(replay_engine)
    hasty = SqlReplayCache(hasty_engine)
    other_process = sqlite3.connect(
        tmp_path / "fhir-ai.jti.sqlite3", isolation_level=None, check_same_thread=False
    )
    other_process.execute("BEGIN IMMEDIATE")
    with pytest.raises(ServiceUnavailable):
        hasty.seen_before("https://ehr.example", "jti-1", int(time.time()) + 300)
    committer = threading.Timer(0.1, other_process.execute, ["COMMIT"])
    committer.start()
    assert patient.seen_before("https://ehr.example", "jti-1", int(time.time()) + 300) is False
    assert patient.seen_before("https://ehr.example", "jti-1", int(time.time()) + 300) is True
    # The COMMIT frees the lock before its execute() returns: closing the connection
    # under it (the two writes above can be that quick) crashed the interpreter.
    committer.join()
    other_process.close()
    replay_engine.dispose()
    hasty_engine.dispose()
    engine.dispose()
