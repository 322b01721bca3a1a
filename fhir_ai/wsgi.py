"""WSGI entry point for an external server: ``gunicorn fhir_ai.wsgi:app``.

Configuration comes from the ``FHIR_AI_*`` environment. Migrations are not applied
here (several gunicorn workers would race); run ``fhir-ai db upgrade`` first. ``/metrics``
shows only the worker process that answers unless ``PROMETHEUS_MULTIPROC_DIR`` names an
empty folder at start and the gunicorn configuration's ``child_exit`` hook calls
:func:`fhir_ai.metrics_multiprocess.mark_worker_dead`; ``fhir-ai serve`` does both.
"""

from __future__ import annotations

from fhir_ai.app import create_app
from fhir_ai.heap import freeze_startup_objects

app = create_app()
freeze_startup_objects()
