"""fhir_ai.store.database: SQLite writers of one process take turns."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from fhir_ai.settings import Settings
from fhir_ai.store.database import READ_ONLY, create_db_engine


def _impatient_engine(tmp_path: Path) -> Engine:
    """The product's SQLite engine, except that SQLite's busy handler never waits: a writer
    that meets another's write lock fails at once with "database is locked"."""
    engine = create_db_engine(Settings(data_dir=tmp_path))

    @event.listens_for(engine, "connect")
    def no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    return engine


def _run(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_writer_threads_of_one_process_never_meet_the_write_lock(tmp_path: Path) -> None:
    engine = _impatient_engine(tmp_path)
    errors: list[Exception] = []

    def increment(times: int) -> None:
        try:
            for _ in range(times):
                with engine.begin() as connection:  # read, then write: one transaction
                    n = connection.execute(text("SELECT n FROM counter")).scalar_one()
                    connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except Exception as error:
            errors.append(error)

    _run([threading.Thread(target=increment, args=(25,)) for _ in range(8)])

    assert errors == []  # without turns: OperationalError "database is locked"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 200


def test_turns_are_given_back_with_the_connection_and_readers_take_none(tmp_path: Path) -> None:
    engine = _impatient_engine(tmp_path)
    with engine.connect() as writer:
        with writer.begin():
            writer.execute(text("UPDATE counter SET n = 1"))
            with engine.connect().execution_options(**{READ_ONLY: True}) as reader:
                assert reader.execute(text("SELECT n FROM counter")).scalar_one() == 0
        with writer.begin():  # the same connection writes again: a new turn
            writer.execute(text("UPDATE counter SET n = 2"))
        broken = writer.begin()
        writer.execute(text("UPDATE counter SET n = 3"))
        broken.rollback()

    done: list[int] = []  # another thread's writer gets its turn (a kept one would wait 30 s)
    thread = threading.Thread(target=lambda: done.append(_write(engine, 4)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert done == [4]


def _write(engine: Engine, value: int) -> int:
    with engine.begin() as connection:
        connection.execute(text("UPDATE counter SET n = :n"), {"n": value})
        return int(connection.execute(text("SELECT n FROM counter")).scalar_one())


def test_a_sqlite_file_pools_as_many_connections_as_configured(tmp_path: Path) -> None:
    """Sixteen threads at once each keep their connection (none is opened per use)."""
    engine = create_db_engine(Settings(data_dir=tmp_path, db_pool_size=16))
    opened: list[object] = []
    event.listen(engine, "connect", lambda connection, _record: opened.append(connection))
    start = threading.Barrier(16)

    def use() -> None:
        with engine.connect() as connection:
            start.wait(timeout=10)
            connection.execute(text("SELECT 1"))

    for _ in range(3):
        threads = [threading.Thread(target=use) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(opened) == 16
    engine.dispose()


def test_a_writer_waits_for_another_process_in_short_steps(tmp_path: Path) -> None:
    """Another process's write lock is tried for again and again (not slept on in SQLite's
    busy handler, whose sleeps grow to 100 ms), and the busy timeout is kept."""
    engine = create_db_engine(Settings(data_dir=tmp_path))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    tries: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _conn, _cursor, sql, *_args: tries.append(sql) if sql == "BEGIN IMMEDIATE" else None,
    )
    other_process = sqlite3.connect(
        tmp_path / "fhir-ai.sqlite3", isolation_level=None, check_same_thread=False
    )
    other_process.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, other_process.execute, ("COMMIT",))
    release.start()
    try:
        assert _write(engine, 6) == 6
    finally:
        release.join()
        other_process.close()
    assert len(tries) > 5  # it kept trying while the lock was held
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
    engine.dispose()
