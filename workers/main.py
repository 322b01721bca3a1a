"""Worker entry point for ``celery -A workers.main ...`` (worker, flower, inspect).

Builds the one Celery app from the ``FHIR_AI_*`` environment at import time, so it
needs ``FHIR_AI_BROKER_URL``. The web process must never import this module.
"""

from __future__ import annotations

from workers.celery_app import worker_celery_from_environment

app = worker_celery_from_environment()
