"""The migrations build exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from fhir_ai.store.database import alembic_config, upgrade_schema


def test_migrations_match_the_declared_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'check.sqlite3'}")
    upgrade_schema(engine)
    command.check(alembic_config(engine))  # raises if the tables differ from schema.py


def test_migrations_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'cycle.sqlite3'}")
    upgrade_schema(engine)
    command.downgrade(alembic_config(engine), "base")
    upgrade_schema(engine)
