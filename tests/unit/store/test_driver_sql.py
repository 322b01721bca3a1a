"""A statement compiled once and bound per call in the driver's own parameter style."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import DateTime, String, bindparam, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from fhir_ai.store.driver_sql import DriverStatement

STATEMENT = select(
    literal("constant", String), bindparam("name", type_=String), bindparam("at", type_=DateTime)
)
AT = datetime(2026, 11, 25, 10, 0, 1)


def test_sqlite_gets_positional_values_through_their_bind_processors() -> None:
    statement = DriverStatement(STATEMENT, sqlite.dialect(), ("name", "at"))
    assert statement.sql.count("?") == 3
    # SQLAlchemy's SQLite text form of a datetime, not sqlite3's own adapter's.
    assert statement.parameters(name="x", at=AT) == ("constant", "x", "2026-11-25 10:00:01.000000")


def test_psycopg_gets_named_values() -> None:
    statement = DriverStatement(STATEMENT, postgresql.psycopg.dialect(), ("name", "at"))
    parameters = statement.parameters(name="x", at=AT)
    assert isinstance(parameters, dict)
    assert parameters["name"] == "x" and parameters["at"] == AT
    assert "constant" in parameters.values()


def test_a_statement_that_renders_per_call_is_refused() -> None:
    expanding = select(literal(1)).where(literal(1).in_(bindparam("values", expanding=True)))
    with pytest.raises(ValueError, match="fixed string"):
        DriverStatement(expanding, sqlite.dialect(), ("values",))
