"""Bulk INSERTs that hold the SQLite write lock as briefly as they can."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

#: Rows per SQLite statement, at most: a batch of records is still a handful of statements.
#: Fewer where the SQLite library bounds a statement's parameters lower (999 before 3.32).
SQLITE_ROWS_PER_STATEMENT = 500


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, the table's column names) into ``table``.

    On SQLite, as multi-row ``INSERT ... VALUES (...), (...)`` statements: SQLite runs each
    in one step. An ``executemany`` steps once per row, and the driver gives up the GIL
    around every step; in a busy web process the background writer then waited for the
    GIL again after each row while it held SQLite's one write lock (5,000 records took
    1.5 s of lock time for 0.2 s of CPU), and every other process's writer waited behind
    it. Values go through each column type's own bind processor, as SQLAlchemy's
    ``executemany`` would send them. On PostgreSQL, an ``executemany`` (psycopg pipelines
    it), which never holds a database-wide lock.
    """
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), list(rows))
        return
    dialect = connection.dialect
    names = list(rows[0])
    # Every name is one of the table's own columns (``table.c`` raises for any other).
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    ]
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    head = f"INSERT INTO {quote(table.name)} ({columns}) VALUES "  # noqa: S608  (schema names)
    row_marks = "(" + ", ".join("?" * len(names)) + ")"
    driver = connection.connection.driver_connection
    assert driver is not None
    most = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(names)
    per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, most))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = [
            process(row[name]) if process else row[name]
            for row in chunk
            for name, process in zip(names, processors, strict=True)
        ]
        connection.exec_driver_sql(head + ", ".join([row_marks] * len(chunk)), tuple(values))
