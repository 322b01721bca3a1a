"""WSGI entry points for ``bench/fhir_api.py``, served by gunicorn in a subprocess.

``fhir_app()`` builds the real application from ``FHIR_AI_*`` environment variables
(the benchmark sets ``FHIR_AI_DATABASE_URL`` to its own PostgreSQL database);
``bare_app()`` is a Flask app with one route returning a small JSON dict, the baseline
that shows what Flask + gunicorn + HTTP alone cost on this machine.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify


def fhir_app() -> Flask:
    """The real FHIR server, configured from the environment, with its start-up objects
    frozen as ``fhir-ai serve`` and ``fhir_ai.wsgi`` freeze theirs (``fhir_ai.heap``)."""
    from fhir_ai.app import create_app
    from fhir_ai.heap import freeze_startup_objects
    from fhir_ai.settings import Settings

    app = create_app(Settings())
    freeze_startup_objects()
    return app


def bare_app() -> Flask:
    """A bare Flask app: ``GET /ping`` returns a small JSON object."""
    app = Flask("bench_bare")

    @app.get("/ping")
    def ping() -> Response:
        return jsonify(status="ok", service="bare", version=1)

    return app
