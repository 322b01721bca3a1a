"""Settings come from FHIR_AI_* variables; defaults give an all-embedded setup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from fhir_ai.settings import Settings


@pytest.fixture(autouse=True)
def no_fhir_ai_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("FHIR_AI_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == Path("./var")
    assert settings.broker_url is None
    assert settings.result_backend_url is None
    assert settings.embedded_broker() is True
    assert settings.auto_migrate is True
    expected = (tmp_path / "var" / "fhir-ai.sqlite3").resolve()
    assert settings.resolved_database_url() == f"sqlite:///{expected}"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FHIR_AI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FHIR_AI_DATABASE_URL", "postgresql+psycopg://u:p@db:5432/fhir")
    monkeypatch.setenv("FHIR_AI_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("FHIR_AI_RESULT_BACKEND_URL", "redis://redis:6379/1")
    monkeypatch.setenv("FHIR_AI_AUTO_MIGRATE", "false")
    monkeypatch.setenv("FHIR_AI_LOG_LEVEL", "DEBUG")
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.resolved_database_url() == "postgresql+psycopg://u:p@db:5432/fhir"
    assert settings.broker_url == "redis://redis:6379/0"
    assert settings.result_backend_url == "redis://redis:6379/1"
    assert settings.embedded_broker() is False
    assert settings.auto_migrate is False
    assert settings.log_level == "DEBUG"


def test_sqlite_default_follows_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path.resolve()}/fhir-ai.sqlite3"


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_AI_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.broker_url = "redis://elsewhere"  # type: ignore[misc]
    copy = settings.model_copy(update={"broker_url": "redis+socket:///tmp/x.sock"})
    assert copy.broker_url == "redis+socket:///tmp/x.sock"
    assert settings.broker_url is None
