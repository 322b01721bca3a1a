"""Liveness and readiness probes."""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, jsonify
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.broker import broker_reachable
from fhir_ai.errors import ServiceUnavailable
from fhir_ai.settings import Settings
from fhir_ai.store.database import ping

BROKER_PROBE_TIMEOUT_S = 2.0


def check_database(engine: Engine) -> str:
    """``"ok"`` or ``"failed: <error type>"`` (no URLs or messages: they may hold secrets)."""
    try:
        ping(engine)
    except SQLAlchemyError as error:
        return f"failed: {type(error).__name__}"
    return "ok"


def check_broker(url: str) -> str:
    """``"ok"`` or ``"failed: ..."`` for the Celery broker at ``url``."""
    try:
        broker_reachable(url, timeout=BROKER_PROBE_TIMEOUT_S)
    except ServiceUnavailable as error:
        return f"failed: {error.message}"
    return "ok"


class BrokerStatus:
    """Whether the broker answers, probed at most once per ``ttl_s`` (for CDS cards,
    which must not wait on a broker that is down); thread-safe. Always True without a
    broker URL (nothing to wait for)."""

    def __init__(self, url: str | None, ttl_s: float = 5.0, timeout_s: float = 0.5) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._up = True

    def __call__(self) -> bool:
        """True when the broker answered the last probe (made now if it is older than ttl)."""
        if self.url is None:
            return True
        with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl_s:
                try:
                    broker_reachable(self.url, timeout=self.timeout_s)
                    self._up = True
                except ServiceUnavailable:
                    self._up = False
                self._checked_at = time.monotonic()
            return self._up


def create_health_blueprint(engine: Engine, settings: Settings) -> Blueprint:
    """``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @blueprint.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks = {"database": check_database(engine)}
        if settings.broker_url:
            checks["broker"] = check_broker(settings.broker_url)
        ready = all(v == "ok" for v in checks.values())
        return jsonify(
            status="ok" if ready else "unavailable", checks=checks
        ), 200 if ready else 503

    return blueprint
