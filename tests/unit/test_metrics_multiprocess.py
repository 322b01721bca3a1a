"""The web server's prometheus_client multiprocess folder: made afresh, dead workers dropped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fhir_ai.errors import ConfigurationError
from fhir_ai.metrics_multiprocess import (
    MULTIPROC_ENV,
    mark_worker_dead,
    multiprocess_dir,
    prepare_multiprocess_dir,
)


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in ``fhir-ai serve`` before its imports: no variable, prometheus_client not loaded
    (the test process has loaded it; both are put back afterwards)."""
    monkeypatch.setenv(MULTIPROC_ENV, "")  # remembers the variable's state, to restore it
    monkeypatch.delenv(MULTIPROC_ENV)
    monkeypatch.delitem(sys.modules, "prometheus_client")


@pytest.mark.usefixtures("fresh_process")
def test_the_folder_under_the_data_dir_is_made_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus-multiproc"
    folder.mkdir()
    (folder / "histogram_4242.db").write_bytes(b"an earlier run")
    assert multiprocess_dir() is None
    assert prepare_multiprocess_dir(tmp_path) == folder.resolve()
    assert list(folder.iterdir()) == []
    assert os.environ[MULTIPROC_ENV] == str(folder.resolve()) and multiprocess_dir() == folder


@pytest.mark.usefixtures("fresh_process")
def test_an_operators_folder_keeps_everything_but_sample_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"x")
    (folder / "README").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    assert prepare_multiprocess_dir(tmp_path / "data") == folder.resolve()
    assert [f.name for f in folder.iterdir()] == ["README"]
    assert not (tmp_path / "data").exists()


def test_too_late_once_prometheus_client_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    assert "prometheus_client" in sys.modules
    with pytest.raises(ConfigurationError, match="imported before"):
        prepare_multiprocess_dir(tmp_path)
    assert MULTIPROC_ENV not in os.environ


def test_a_dead_worker_loses_its_live_gauges_not_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("gauge_livesum_77.db", "histogram_77.db", "gauge_livesum_78.db")
    files = [tmp_path / name for name in names]
    for file in files:
        file.write_bytes(b"")
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    mark_worker_dead(77)  # multiprocess mode off: nothing to do
    assert all(f.exists() for f in files)
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    mark_worker_dead(77)
    assert [f.exists() for f in files] == [False, True, True]
