"""Worker entry point for ``celery -A workers.main ...`` (worker, flower, inspect).

Builds the one Celery app from the ``FHIR_AI_*`` environment at import time, so it
needs ``FHIR_AI_BROKER_URL``. The web process must never import this module.
"""

from __future__ import annotations

from fhir_ai.logging import configure_logging
from fhir_ai.settings import Settings
from workers.celery_app import make_worker_celery

_settings = Settings()
configure_logging(_settings.log_level, _settings.log_format)
app = make_worker_celery(_settings)
