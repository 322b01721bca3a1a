"""Writes AuditEvents in batches from one background thread per process.

Requests hand their event over and return; the thread writes what has queued up in one
transaction every ``interval_s`` (or at once when ``max_batch`` are waiting). A process
that exits normally flushes first; one that is killed loses at most the events of the
last interval. When the queue is full (the database is down or far behind), events are
written by the request thread itself rather than dropped.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.store.repository import ResourceStore

logger = logging.getLogger("fhir_ai.audit")


class AuditWriter:
    """A per-process batching writer of AuditEvent resources."""

    def __init__(
        self,
        store: ResourceStore,
        interval_s: float = 0.2,
        max_batch: int = 500,
        max_queued: int = 10_000,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_batch = max_batch
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queued)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0
        self._stopping = threading.Event()

    def submit(self, event: dict[str, Any]) -> None:
        """Queue an event for writing (written now if the queue is full)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._write([event], queued=False)

    def flush(self) -> None:
        """Write everything queued so far, including a batch the thread holds."""
        batch = self._drain(block=False)
        while batch:
            self._write(batch)
            batch = self._drain(block=False)
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stopping.set()
        if self._thread is not None and self._owner_pid == os.getpid():
            self._thread.join(timeout=5)
        self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._owner_pid != os.getpid():  # new, or forked
                self._owner_pid = os.getpid()
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="fhir-ai-audit", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._drain(block=True)
            if batch:
                self._write(batch)

    def _drain(self, block: bool) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        try:
            if block:
                batch.append(self._queue.get(timeout=self.interval_s))
                self._stopping.wait(self.interval_s)  # let a batch gather
            while len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _write(self, events: list[dict[str, Any]], queued: bool = True) -> None:
        try:
            with self.store.session(flush_wal=False) as session:
                for event in events:
                    session.create(event)
        except SQLAlchemyError as error:
            logger.error(
                "audit events not written",
                extra={"error_type": type(error).__name__, "events": len(events)},
            )
        finally:
            for _ in events if queued else ():
                self._queue.task_done()
