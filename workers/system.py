"""Housekeeping tasks: ``workers.system.ping`` proves a worker consumes and answers."""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery import shared_task

logger = logging.getLogger("workers.system")


def ping(task: Any) -> dict[str, object]:
    """Answer ``{"pong": True, "worker": <worker hostname>}``."""
    hostname = task.request.hostname or socket.gethostname()
    logger.info("ping", extra={"worker": hostname})
    return {"pong": True, "worker": hostname}


ping_task = shared_task(name="workers.system.ping", bind=True)(ping)
