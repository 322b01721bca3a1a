"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.settings import Settings
from fhir_ai.store.database import ping


def create_health_blueprint(engine: Engine, settings: Settings) -> Blueprint:
    """``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @blueprint.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks: dict[str, str] = {}
        try:
            ping(engine)
            checks["database"] = "ok"
        except SQLAlchemyError as error:
            checks["database"] = f"failed: {type(error).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return jsonify(
            status="ok" if ready else "unavailable", checks=checks
        ), 200 if ready else 503

    return blueprint
