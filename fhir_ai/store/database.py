"""Engine creation and schema migrations for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from fhir_ai.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Execution option marking a connection whose transactions only read.
READ_ONLY = "fhir_ai_read_only"


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event below open transactions, not pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A writing transaction takes the write lock up front: one that reads and then upgrades
    # its lock can fail at once with SQLITE_BUSY when another process wrote meanwhile.
    # Read-only sessions (execution option ``read_only``) begin deferred and, under WAL,
    # never wait for writers.
    mode = "DEFERRED" if connection.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_db_engine(settings: Settings) -> Engine:
    """Create the engine for the configured database (SQLite file by default)."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=settings.sql_echo)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # psycopg prepares a statement after five runs; PostgreSQL may then cache a generic
    # plan that cannot see which search value is selective (bench/fhir_api.py measured
    # 21 ms against 1.3 ms). Search queries are always planned for their values.
    return create_engine(
        url,
        echo=settings.sql_echo,
        pool_pre_ping=True,
        pool_size=10,
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )


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
