"""``default``-queue tasks that talk to other systems once a job is done:
``deliver`` (a Subscription notification) and ``write_back`` (a report to the EHR).

Both retry transient failures (endpoint down, 5xx, token endpoint down) with exponential
backoff, ``FHIR_AI_SUBSCRIPTION_RETRY_S`` doubling per attempt (at most 10 minutes), up
to ``FHIR_AI_SUBSCRIPTION_MAX_RETRIES``; anything else fails at once.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any, Final

import requests
from celery import shared_task

from fhir_ai.errors import ConfigurationError, FhirAiError
from fhir_ai.security.backend_services import (
    BackendServicesClient,
    TokenRequestFailed,
    load_backend_client,
)
from fhir_ai.subscriptions import delivery, writeback
from fhir_ai.subscriptions.matching import NOTIFIED_STATES, channel
from workers.runtime import worker_runtime

logger = logging.getLogger("workers.notify")
MAX_BACKOFF_S: Final = 600.0


@cache
def http_session() -> requests.Session:
    """This process's HTTP connection pool (a per-process cache)."""
    return requests.Session()


@cache
def backend_client() -> BackendServicesClient:
    """The write-back's Backend Services client (a per-process cache)."""
    config = worker_runtime().settings.writeback_client_config
    if config is None:
        raise ConfigurationError("FHIR_AI_WRITEBACK_CLIENT_CONFIG is not set")
    return load_backend_client(config, session=http_session())


def _retry(task: Any, error: Exception) -> Exception:
    settings = worker_runtime().settings
    countdown = min(MAX_BACKOFF_S, settings.subscription_retry_s * 2**task.request.retries)
    retries = settings.subscription_max_retries
    return task.retry(exc=error, countdown=countdown, max_retries=retries)  # type: ignore[no-any-return]


def deliver(task: Any, subscription_id: str, reference: str) -> dict[str, Any]:
    """Notify Subscription ``subscription_id`` that ``reference`` matched its criteria."""
    runtime = worker_runtime()
    kind, _, resource_id = reference.partition("/")
    try:
        with runtime.store.session(read_only=True) as session:
            subscription = session.read("Subscription", subscription_id).content or {}
            resource = session.read(kind, resource_id).content
        target = channel(subscription)
    except FhirAiError as error:  # deleted since, or its channel was made unusable
        return {"status": "skipped", "reason": error.message}
    if subscription.get("status") not in NOTIFIED_STATES:
        return {"status": "skipped"}
    timeout = runtime.settings.subscription_timeout_s
    try:
        sent = delivery.post(target, resource, http_session(), timeout)
    except delivery.DeliveryFailed as error:
        with runtime.store.session() as session:
            delivery.record(session, subscription_id, reference, error.message)
        if task.request.retries >= runtime.settings.subscription_max_retries:
            return {"status": "failed", "reason": error.message}
        raise _retry(task, error) from error
    with runtime.store.session() as session:
        delivery.record(session, subscription_id, reference, None)
    return {"status": "delivered", "http_status": sent}


def write_back(task: Any, reference: str) -> dict[str, Any]:
    """Write the report ``reference`` and its results to the EHR's FHIR server."""
    runtime = worker_runtime()
    base = runtime.settings.writeback_fhir_base_url
    if not base:
        return {"status": "disabled"}
    with runtime.store.session(read_only=True) as session:
        bundle = writeback.report_bundle(session, reference)
    timeout = runtime.settings.subscription_timeout_s
    try:
        location = writeback.send_bundle(bundle, base, backend_client(), http_session(), timeout)
    except (delivery.DeliveryFailed, TokenRequestFailed) as error:
        if task.request.retries >= runtime.settings.subscription_max_retries:
            logger.warning("write-back gave up", extra={"error": type(error).__name__})
            return {"status": "failed"}
        raise _retry(task, error) from error
    except FhirAiError as error:
        logger.warning("write-back refused", extra={"error": error.message})
        return {"status": "refused", "reason": error.message}
    logger.info("report written back")
    return {"status": "written", "location": location}


deliver_task = shared_task(name="workers.notify.deliver", bind=True, acks_late=True)(deliver)
write_back_task = shared_task(name="workers.notify.write_back", bind=True, acks_late=True)(
    write_back
)
