"""Fixtures of the store's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.repository import ResourceStore


@pytest.fixture
def store(tmp_path: Path) -> ResourceStore:
    """An empty store on a new SQLite database."""
    engine = create_db_engine(Settings(data_dir=tmp_path))
    upgrade_schema(engine)
    return ResourceStore(engine, SearchRegistry.load())
