"""Run the Flask app under gunicorn (gthread workers) from inside the ``fhir-ai`` process."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from fhir_ai.heap import freeze_startup_objects
from fhir_ai.metrics_multiprocess import mark_worker_dead


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn application whose WSGI app comes from ``factory`` (called in each worker)."""

    def __init__(self, factory: Callable[[], Flask], options: Mapping[str, Any]) -> None:
        self._factory = factory
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        app = self._factory()
        freeze_startup_objects()  # in the worker, once its app is built
        return app


def gunicorn_options(
    host: str, port: int, workers: int, threads: int, loglevel: str, multiprocess_metrics: bool
) -> dict[str, Any]:
    """Gunicorn settings for ``fhir-ai serve`` (``multiprocess_metrics``: the workers share
    a prometheus_client multiprocess folder, see :mod:`fhir_ai.metrics_multiprocess`)."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        "graceful_timeout": 20,
        "keepalive": 5,
        "loglevel": loglevel.lower(),
        "proc_name": "fhir-ai",
        "preload_app": False,
        "control_socket_disable": True,  # gunicorn 25+: no shared ~/.gunicorn/gunicorn.ctl
    }
    if multiprocess_metrics:
        options["child_exit"] = _child_exit
    return options


def _child_exit(_server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook (in the master): a worker ended, however it ended."""
    mark_worker_dead(int(worker.pid))


def run_server(factory: Callable[[], Flask], options: Mapping[str, Any]) -> None:
    """Serve until gunicorn's master stops; SIGTERM/SIGINT end it with ``SystemExit``.

    Gunicorn's SIGCHLD handler reaps *any* child; it is removed once the master stops so
    the caller can wait for its own children (the embedded worker and broker).
    """
    owner = os.getpid()
    try:
        GunicornServer(factory, options).run()
    finally:
        if os.getpid() == owner:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
