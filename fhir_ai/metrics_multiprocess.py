"""prometheus_client's multiprocess mode for the web server's gunicorn worker processes.

Each gunicorn worker is a process of its own, so request metrics kept in memory would
show, on every scrape, only the worker that happened to answer it. In multiprocess mode
every process writes its samples to files in one folder (``PROMETHEUS_MULTIPROC_DIR``)
and a scrape merges them all (:mod:`fhir_ai.metrics`).

prometheus_client chooses where samples go when it is first imported, so ``fhir-ai serve``
calls :func:`prepare_multiprocess_dir` before anything imports it; gunicorn then forks its
workers from that process and they inherit the variable. The folder is emptied at start
(samples of an earlier run would add up with this one's), and gunicorn's ``child_exit``
hook calls :func:`mark_worker_dead` so a dead worker's live gauges stop counting. Without
the variable (tests, a single process) the metrics stay in memory as before.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Final

from fhir_ai.errors import ConfigurationError

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: The folder under the data directory, unless the operator names one.
FOLDER_NAME: Final = "prometheus-multiproc"


def multiprocess_dir() -> Path | None:
    """The folder of multiprocess mode; None when it is off (the variable unset)."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """Turn multiprocess mode on for this process and the processes it forks; the folder.

    The operator's ``PROMETHEUS_MULTIPROC_DIR`` if set (its ``*.db`` sample files are
    removed), else ``<data_dir>/prometheus-multiproc`` made afresh. Must run before
    prometheus_client is imported (:class:`ConfigurationError` otherwise).
    """
    if "prometheus_client" in sys.modules:
        raise ConfigurationError(
            "prometheus_client was imported before its multiprocess folder was set up; "
            "the web server's metrics would stay per process"
        )
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
    else:
        folder = data_dir / FOLDER_NAME
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    folder = folder.resolve()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def mark_worker_dead(pid: int) -> None:
    """Drop the live gauges of the ended process ``pid`` (its counts stay: they happened)."""
    folder = multiprocess_dir()
    if folder is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
