"""The Celery application factory, configured from :class:`fhir_ai.settings.Settings`."""

from __future__ import annotations

from typing import Any, Final

from celery import Celery
from kombu.entity import Exchange, Queue

from fhir_ai.errors import ConfigurationError
from fhir_ai.jobs.routing import DEFAULT_QUEUE, QUEUE_NAMES, queue_for
from fhir_ai.logging import configure_logging
from fhir_ai.settings import Settings

#: Modules the worker imports at start-up to register its tasks.
TASK_MODULES: Final = ("workers.system", "workers.imaging", "workers.nlp", "workers.notify")

RESULT_EXPIRES_S: Final = 6 * 3600
#: A lost worker's unacked jobs are looked for about this many times per visibility timeout.
RESTORE_SWEEPS_PER_TIMEOUT: Final = 36


def route_task(name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> dict[str, str]:
    """Celery router (``task_routes`` entry): send each task to :func:`queue_for`'s queue."""
    queue = queue_for(name)
    return {"queue": queue, "routing_key": queue}


def _queue(name: str) -> Queue:
    exchange = Exchange(name, type="direct")  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name)  # type: ignore[no-untyped-call]


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings`` (broker URL required)."""
    if not settings.broker_url:
        raise ConfigurationError(
            "FHIR_AI_BROKER_URL is not set: Celery needs a broker URL "
            "(for example redis://127.0.0.1:6379/0)."
        )
    visibility = settings.broker_visibility_timeout_s
    transport_options = {"visibility_timeout": visibility, **_restore_options(visibility)}
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend_url or settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": dict(transport_options),
        "visibility_timeout": visibility,
        "task_queues": tuple(_queue(name) for name in QUEUE_NAMES),
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_exchange": DEFAULT_QUEUE,
        "task_default_routing_key": DEFAULT_QUEUE,
        "task_routes": (route_task,),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": max(1, settings.task_time_limit_s * 9 // 10),
        "task_time_limit": settings.task_time_limit_s,
        "worker_proc_alive_timeout": 120.0,
        "worker_max_tasks_per_child": 200,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "result_expires": RESULT_EXPIRES_S,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
    }


def _restore_options(visibility_s: int) -> dict[str, int]:
    """kombu's sweep for unacked messages of lost workers: about
    :data:`RESTORE_SWEEPS_PER_TIMEOUT` sweeps per visibility timeout (10 s ticks at most)."""
    period = max(1, visibility_s // RESTORE_SWEEPS_PER_TIMEOUT)
    interval = min(10, period)
    return {"unacked_restore_interval": interval, "unacked_restore_throttle": period // interval}


def make_celery(settings: Settings, app_class: type[Celery] = Celery) -> Celery:
    """A Celery app for ``settings``; raises :class:`ConfigurationError` without a broker."""
    app = app_class("fhir_ai", include=list(TASK_MODULES), set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


class WorkerCelery(Celery):  # type: ignore[misc]  # Celery is untyped
    """A worker process's app. A prefork child started with ``--pool-start-method spawn``
    (a fresh interpreter) receives it pickled and rebuilds it from the environment with
    :func:`worker_celery_from_environment`, so that it gets what a forked child inherits:
    the worker's logging and signal handlers (its metrics)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (worker_celery_from_environment, ())


def make_worker_celery(settings: Settings) -> Celery:
    """The Celery app of a worker process: :func:`make_celery` with the process prepared
    (:func:`workers.bootstrap.prepare_process`) and the worker's signal handlers."""
    from workers.bootstrap import prepare_process

    prepare_process(settings)
    from workers.signals import install  # after prepare_process: imports prometheus_client

    app = make_celery(settings, WorkerCelery)
    install(app, settings)
    return app


def worker_celery_from_environment() -> Celery:
    """:func:`make_worker_celery` from the ``FHIR_AI_*`` environment, logging configured."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return make_worker_celery(settings)
