"""Worker heartbeat files: a worker touches its file while it is connected to the broker;
``fhir-ai worker --healthcheck`` says whether the file is fresh (a container probe).

The worker's main process touches ``<heartbeat_dir>/<node name>`` on each Celery event
heartbeat (every 2 s while it is connected and its loop runs) and removes it when it
stops. No Celery import here: the probe must start fast.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Final

DEFAULT_MAX_AGE_S: Final = 60.0
_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]")


def node_name(hostname: str | None) -> str:
    """Celery's node name for ``--hostname`` (``%h`` expanded), ``celery@<host>`` by default."""
    host = socket.gethostname()
    if not hostname:
        return f"celery@{host}"
    return hostname.replace("%h", host).replace("%n", host.split(".")[0])


def heartbeat_file(directory: Path, node: str) -> Path:
    """The heartbeat file of ``node`` in ``directory`` (a name safe on any file system)."""
    return directory / _UNSAFE.sub("_", node)


def beat(directory: Path, node: str) -> None:
    """Touch ``node``'s heartbeat file."""
    directory.mkdir(parents=True, exist_ok=True)
    heartbeat_file(directory, node).touch()


def forget(directory: Path, node: str) -> None:
    """Remove ``node``'s heartbeat file (the worker stops)."""
    heartbeat_file(directory, node).unlink(missing_ok=True)


def heartbeat_age(directory: Path, node: str) -> float | None:
    """Seconds since ``node``'s last heartbeat; None when it has none."""
    try:
        return max(0.0, time.time() - heartbeat_file(directory, node).stat().st_mtime)
    except FileNotFoundError:
        return None
