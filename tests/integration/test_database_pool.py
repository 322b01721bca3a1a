"""PostgreSQL pools: a connection that died while idle in the pool is replaced before use,
one in steady use is not pinged, and the fixed-read pool answers like the main one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from fhir_ai.settings import Settings
from fhir_ai.store import database
from fhir_ai.store.database import create_db_engine, create_fixed_read_engine
from tests.conftest import POSTGRES_ADMIN_URL


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture(params=["main", "fixed-read"])
def engine(request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path) -> Engine:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    main = create_db_engine(settings)
    built = main if request.param == "main" else create_fixed_read_engine(settings, main)
    assert built.dialect.name == "postgresql"
    request.addfinalizer(built.dispose)
    request.addfinalizer(main.dispose)
    return built


def test_an_idle_connection_that_died_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _backend_pid(engine)
    _terminate(dead)
    monkeypatch.setattr(database, "IDLE_PING_AFTER_S", 0.0)  # every pooled one counts as idle
    assert _backend_pid(engine) != dead  # pinged, found dead, reconnected: no error


def test_a_connection_in_steady_use_is_not_pinged(engine: Engine) -> None:
    dead = _backend_pid(engine)
    _terminate(dead)
    # Used a moment ago, so handed out without a ping: the first statement meets the dead
    # connection (SQLAlchemy then invalidates the pool), and the next checkout reconnects.
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != dead


def test_sqlite_reads_share_the_main_engine(tmp_path: Path) -> None:
    main = create_db_engine(Settings(data_dir=tmp_path))
    assert create_fixed_read_engine(Settings(data_dir=tmp_path), main) is main


def test_concurrent_readers_reuse_pooled_connections(engine: Engine) -> None:
    """As many threads as a web worker has read at once: each keeps its backend (a pool
    smaller than that opened and closed overflow connections, one backend per request)."""
    barrier = threading.Barrier(8)

    def read() -> int:
        with engine.connect() as connection:
            barrier.wait(timeout=10)  # all 8 hold a connection at the same time
            return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

    with ThreadPoolExecutor(8) as pool:
        first = set(pool.map(lambda _: read(), range(8)))
        second = set(pool.map(lambda _: read(), range(8)))

    assert len(first) == 8 and second == first


def test_both_pools_take_their_size_from_the_settings(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url, db_pool_size=3)
    main = create_db_engine(settings)
    fixed = create_fixed_read_engine(settings, main)
    try:
        assert main.pool.size() == fixed.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        fixed.dispose()
        main.dispose()
