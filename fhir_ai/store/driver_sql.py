"""A SQLAlchemy statement compiled once for a database, run as text on the driver.

For the hot statements whose shape never changes (the CDS imaging read, the jti upsert):
SQLAlchemy's work per execution (the statement's cache key, the bound parameters, result
processing) cost more CPU than the database's own. The statement is compiled here once;
each call only binds its values, through their types' bind processors for the dialect as
SQLAlchemy would send them (a datetime is stored on SQLite as text of SQLAlchemy's form),
in the driver's parameter style (positional for SQLite, named for psycopg).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

#: A driver's parameters: positional (``?``) or named (``%(name)s``).
DriverParameters = tuple[Any, ...] | dict[str, Any]


class DriverStatement:
    """``statement`` compiled for ``dialect``; ``varying`` names the parameters given at
    each call, every other bound value is a constant of the statement, bound here once."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, varying: tuple[str, ...]):
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a driver statement must compile to a fixed string")
        self.sql = compiled.string
        self._processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        self._constants = {
            name: self._process(name, value)
            for name, value in compiled.construct_params(dict.fromkeys(varying)).items()
            if name not in varying
        }
        self._positions = tuple(compiled.positiontup) if compiled.positiontup else None

    def parameters(self, **given: Any) -> DriverParameters:
        """The statement's parameters with ``given`` (the varying ones), in driver style."""
        values = {**self._constants, **{k: self._process(k, v) for k, v in given.items()}}
        if self._positions is None:
            return values
        return tuple(values[name] for name in self._positions)

    def _process(self, name: str, value: Any) -> Any:
        process = self._processors.get(name)
        return process(value) if process is not None and value is not None else value
