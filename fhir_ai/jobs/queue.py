"""The job queue port and its Celery adapter (send by task name; no worker imports)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Protocol

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.jobs.routing import queue_for
from fhir_ai.settings import Settings

logger = logging.getLogger("fhir_ai.jobs")

#: Enqueueing gives up after this long when the broker does not answer.
SEND_TIMEOUT_S = 5.0
#: Message header with the send time (epoch seconds): workers measure the queue wait.
SENT_AT_HEADER = "fhir_ai_sent_at"


class JobQueue(Protocol):
    """Where jobs are sent: by task name, with small JSON arguments."""

    def send(self, task_name: str, args: Sequence[str], task_id: str | None = None) -> None:
        """Queue ``task_name(*args)``; raise :class:`ServiceUnavailable` if it cannot."""

    def call(self, task_name: str, args: Sequence[Any], timeout_s: float) -> Any:
        """Queue ``task_name(*args)`` and wait for its result (interactive use)."""


class CeleryJobQueue:
    """A :class:`JobQueue` on the Celery broker of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def _celery(self) -> Any:
        from celery import Celery  # deferred: only processes that send jobs need it

        from fhir_ai.errors import ConfigurationError

        if not self._settings.broker_url:
            raise ConfigurationError("FHIR_AI_BROKER_URL is not set: jobs cannot be queued")
        app = Celery("fhir_ai", set_as_current=False)
        app.conf.update(
            broker_url=self._settings.broker_url,
            result_backend=self._settings.result_backend_url or self._settings.broker_url,
            broker_connection_retry=False,
            broker_connection_timeout=SEND_TIMEOUT_S,
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            result_accept_content=["json"],
        )
        return app

    @property
    def control(self) -> Any:
        """Celery's remote control of the workers on this broker (``inspect().ping()``)."""
        return self._celery.control

    def close(self) -> None:
        """Release the broker connections, if any were opened."""
        if "_celery" in self.__dict__:
            self._celery.close()

    def send(self, task_name: str, args: Sequence[str], task_id: str | None = None) -> None:
        """Queue ``task_name(*args)`` on its queue (see :func:`queue_for`)."""
        queue = queue_for(task_name)
        try:
            self._celery.send_task(
                task_name, args=list(args), queue=queue, routing_key=queue, task_id=task_id,
                retry=False, headers={SENT_AT_HEADER: time.time()},
            )  # fmt: skip
        except (KombuOperationalError, RedisError, OSError) as error:
            logger.warning(
                "job not queued", extra={"task": task_name, "error": type(error).__name__}
            )
            raise ServiceUnavailable("The job queue is unavailable; retry later") from error

    def call(self, task_name: str, args: Sequence[Any], timeout_s: float) -> Any:
        """Queue and wait for the result; 503 when the broker or the workers do not answer."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        queue = queue_for(task_name)
        try:
            result = self._celery.send_task(
                task_name, args=list(args), queue=queue, routing_key=queue, retry=False
            )
            return result.get(timeout=timeout_s, propagate=True)
        except CeleryTimeout as error:
            raise ServiceUnavailable(
                f"No {queue} worker answered within {timeout_s:g} s; retry later"
            ) from error
        except (KombuOperationalError, RedisError, OSError) as error:
            raise ServiceUnavailable("The job queue is unavailable; retry later") from error
