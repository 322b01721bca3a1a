"""Engine creation and schema migrations for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from fhir_ai.settings import Settings
from fhir_ai.store.schema import jwt_replay

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Execution option marking a connection whose transactions only read.
READ_ONLY = "fhir_ai_read_only"
#: A pooled PostgreSQL connection idle longer than this is pinged before it is used.
IDLE_PING_AFTER_S = 5.0
_CHECKED_IN_AT = "fhir_ai_checked_in_at"
_HOLDS_WRITE_TURN = "fhir_ai_holds_write_turn"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long a jti write waits for another process's lock on the SQLite replay file.
REPLAY_LOCK_WAIT_MS = 5_000


def _sqlite_pragmas(
    dbapi_connection: Any, _record: ConnectionPoolEntry, busy_timeout_ms: int
) -> None:
    # Let SQLAlchemy's "begin" event below open transactions, not pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _SqliteWriteTurns:
    """SQLite transactions: writers of one process take turns before SQLite's write lock.

    A writing transaction takes the write lock up front (``BEGIN IMMEDIATE``): one that
    reads and then upgrades its lock can fail at once with SQLITE_BUSY when another process
    wrote meanwhile. Read-only sessions (execution option ``read_only``) begin deferred
    and, under WAL, never wait for writers.

    A writer that finds the write lock taken sleeps in SQLite's busy handler (1, 2, 5, 10
    ... up to 100 ms between tries), even when the lock is freed a millisecond later: with
    16 request threads each writing a JWT's jti, the p99 of a CDS call was 0.5 to 0.9 s
    (``bench/cds_latency.py``, SQLite without Redis). So the writing connections of one
    process first take a turn on a lock of their own, given back when the connection
    returns to the pool (after its COMMIT or ROLLBACK: given back at the commit event, the
    next writer would meet the lock before the COMMIT ran) and handed to the next writer at
    once; only writers of other processes still meet SQLite's busy handler. The lock is
    re-entrant (a thread may open a second writing connection), and a turn not had within
    the busy timeout is skipped: the writer then waits in SQLite, as it did without turns.
    """

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.RLock()
        self._timeout_s = timeout_s

    def begin(self, connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        info = connection.info
        if not info.get(_HOLDS_WRITE_TURN) and self._lock.acquire(timeout=self._timeout_s):
            info[_HOLDS_WRITE_TURN] = True
        _begin_immediate(connection)

    def checkin(self, _dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        """The connection is back in the pool, its transaction ended: the next turn."""
        if record.info.pop(_HOLDS_WRITE_TURN, False):
            self._lock.release()


def _begin_immediate(connection: Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's write lock in steps of a
    millisecond or less, for as long as the connection's busy timeout, instead of in
    SQLite's busy handler.

    The busy handler sleeps 1, 2, 5, 10 ... then 100 ms between tries. Under sustained
    load each web process's background writer always has a batch waiting, so the writer
    holding the lock took it again at once after its COMMIT while the other slept longer
    and longer: the other process's queue filled, its request threads then wrote their
    records one transaction each, and patient-view fell from 1000 to 500 calls/s with a
    p99 of 65 to 105 ms (``bench/cds_latency.py --rounds 1 --requests 12000``). A
    connection whose busy timeout is 0 still fails at once.
    """
    driver = connection.connection.driver_connection
    assert driver is not None
    wait_ms = int(driver.execute("PRAGMA busy_timeout").fetchone()[0])
    if wait_ms == 0:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        return
    driver.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as error:
                busy = getattr(error.orig, "sqlite_errorname", None) == "SQLITE_BUSY"
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.0002, 0.001))  # noqa: S311  (jitter, not a secret)
    finally:
        driver.execute(f"PRAGMA busy_timeout={wait_ms}")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


#: Resource content (JSON columns) is written and read with orjson, as the API parses and
#: answers it, not the standard library's json: 10x faster on a 300 kB heatmap Binary.
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_db_engine(settings: Settings) -> Engine:
    """Create the engine for the configured database (SQLite file by default)."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, url)
    # psycopg prepares a statement after five runs; PostgreSQL may then cache a generic
    # plan that cannot see which search value is selective (bench/fhir_api.py measured
    # 21 ms against 1.3 ms). Search queries are always planned for their values.
    return _postgres_engine(
        settings,
        pool_size=settings.db_pool_size,
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )


def create_replay_engine(
    settings: Settings, engine: Engine, lock_wait_ms: int = REPLAY_LOCK_WAIT_MS
) -> Engine:
    """The engine of the database jti replay cache (:mod:`fhir_ai.store.replay`):
    ``engine`` itself, except on a SQLite file, where the cache gets a file of its own
    beside it (``<name>.jti.sqlite3``, its one table created here; it holds nothing that
    outlives the tokens' ``exp``).

    Every CDS call with a JWT writes its jti. In the application's file, that write waits
    for the SQLite write lock behind the background writer's batches (audit events,
    issued cards), and a web process that finds the lock taken sleeps in SQLite's busy
    handler (up to 100 ms a try): with two gunicorn processes the JWT patient-view p99
    was 208 ms (``bench/cds_latency.py``). In a file of its own, a jti write waits only
    for other jti writes, each a single-row upsert. Like every SQLite writer here it
    waits in steps of a millisecond or less (``_begin_immediate``), not in SQLite's busy
    handler (whose sleeps grow to 100 ms while the other process's threads take the lock
    turn after turn: a p99 of 357 ms), for up to ``lock_wait_ms``; then the cache fails
    closed.
    """
    url = engine.url
    database = _sqlite_file(url) if url.get_backend_name() == "sqlite" else None
    if database is None:
        return engine
    replay = _sqlite_engine(
        settings,
        url.set(database=str(database.with_suffix(".jti.sqlite3"))),
        busy_timeout_ms=lock_wait_ms,
    )
    jwt_replay.create(replay, checkfirst=True)
    return replay


def _sqlite_engine(
    settings: Settings, url: URL, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine:
    pooled = {}
    database = _sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        # A file database keeps a pool as large as PostgreSQL's (a connection per thread:
        # an overflow connection is opened, its pragmas set and its schema read, per use);
        # ``:memory:`` keeps SQLAlchemy's one connection per thread.
        pooled = {"pool_size": settings.db_pool_size}
    engine = create_engine(url, echo=settings.sql_echo, **_JSON_CODEC, **pooled)
    turns = _SqliteWriteTurns(timeout_s=SQLITE_BUSY_TIMEOUT_MS / 1000)
    event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_ms=busy_timeout_ms))
    event.listen(engine, "begin", turns.begin)
    event.listen(engine, "checkin", turns.checkin)
    return engine


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names (None for ``:memory:`` and temporary databases)."""
    return Path(url.database) if url.database not in (None, "", ":memory:") else None


def create_fixed_read_engine(settings: Settings, engine: Engine) -> Engine:
    """The engine for fixed-shape reads (:mod:`fhir_ai.store.ai_results`): ``engine``
    itself on SQLite; on PostgreSQL a second, smaller pool whose prepared statements may
    keep PostgreSQL's generic plan.

    A fixed-shape statement's plan does not depend on its values, so planning it on every
    call (as the main engine must for searches) is wasted: 0.9 ms of a 2 ms read of a
    patient's AI results, measured with 200 reports.

    The pool is as large as the main one (``FHIR_AI_DB_POOL_SIZE``): with fewer connections
    than request threads reading at once, SQLAlchemy opens overflow connections and closes
    them on return, a PostgreSQL backend started per request (with 4 for 8 threads the CDS
    p99 was 159 ms, with 8 it was 97 ms; bench/cds_latency.py --compare-app).
    """
    if engine.dialect.name == "sqlite":
        return engine
    return _postgres_engine(settings, pool_size=settings.db_pool_size)


def _postgres_engine(settings: Settings, **options: Any) -> Engine:
    engine = create_engine(
        settings.resolved_database_url(), echo=settings.sql_echo, **_JSON_CODEC, **options
    )
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _IdlePing(engine))
    return engine


def _note_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


class _IdlePing:
    """Check a connection that sat idle in the pool before handing it out.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per
    request, which under full load waits for the database process to be scheduled (a
    fifth of a CDS call's time, sampled with py-spy). A connection in steady use is proved
    by its last statement; one idle for :data:`IDLE_PING_AFTER_S` (the database may have
    restarted, a proxy may have cut it) is pinged with the dialect's own ping, and a dead
    one is replaced (``DisconnectionError`` makes the pool reconnect).
    """

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect

    def __call__(
        self, dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_AFTER_S:
            return
        try:
            self.dialect.do_ping(dbapi_connection)
        except self.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("pooled connection failed its ping") from error


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine) -> None:
    """Apply every migration up to the newest."""
    command.upgrade(alembic_config(engine), "head")


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
