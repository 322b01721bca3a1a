"""WSGI entry point for an external server: ``gunicorn fhir_ai.wsgi:app``.

Configuration comes from the ``FHIR_AI_*`` environment. Migrations are not applied
here (several gunicorn workers would race); run ``fhir-ai db upgrade`` first.
"""

from __future__ import annotations

from fhir_ai.app import create_app

app = create_app()
