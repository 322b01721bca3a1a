"""Liveness and readiness probes."""

from __future__ import annotations

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
