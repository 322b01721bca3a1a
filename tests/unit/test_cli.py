"""The ``fhir-ai`` command line: help, worker preconditions, migrations."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from fhir_ai.cli import main


@pytest.fixture(autouse=True)
def no_fhir_ai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FHIR_AI_"):
            monkeypatch.delenv(name)


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "worker", "db"):
        assert command in result.output


def test_serve_help_lists_options() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--threads", "--no-worker"):
        assert option in result.output


def test_worker_requires_broker_url() -> None:
    result = CliRunner().invoke(main, ["worker"], env={"FHIR_AI_LOG_LEVEL": "ERROR"})
    assert result.exit_code == 1
    assert "FHIR_AI_BROKER_URL is not set" in result.output


def test_worker_rejects_unknown_queue() -> None:
    env = {"FHIR_AI_BROKER_URL": "redis://127.0.0.1:1/0", "FHIR_AI_LOG_LEVEL": "ERROR"}
    result = CliRunner().invoke(main, ["worker", "--queues", "gpu"], env=env)
    assert result.exit_code == 2
    assert "unknown queue" in result.output


def test_db_upgrade_creates_schema(tmp_path: Path) -> None:
    env = {"FHIR_AI_DATA_DIR": str(tmp_path), "FHIR_AI_LOG_LEVEL": "ERROR"}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    engine = create_engine(f"sqlite:///{tmp_path / 'fhir-ai.sqlite3'}")
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_serve_without_migrations_warns_of_an_old_schema_or_a_stale_index(tmp_path: Path) -> None:
    from fhir_ai.cli import _warn_on_stale_index
    from fhir_ai.fhir.search.parameters import SearchRegistry
    from fhir_ai.settings import Settings
    from fhir_ai.store.database import create_db_engine, upgrade_schema
    from fhir_ai.store.repository import ResourceStore

    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("fhir_ai.cli")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)  # whatever an earlier command configured
    settings = Settings(data_dir=tmp_path)
    engine = create_db_engine(settings)
    try:
        _warn_on_stale_index(settings)  # no schema yet
        upgrade_schema(engine)
        _warn_on_stale_index(settings)  # a schema, no index fingerprints: stale
        ResourceStore(engine, SearchRegistry.load()).refresh_index()
        _warn_on_stale_index(settings)  # current
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        engine.dispose()
    assert len(warnings) == 2
    assert "schema is not current" in warnings[0]
    assert "search index" in warnings[1] and "fhir-ai db upgrade" in warnings[1]
