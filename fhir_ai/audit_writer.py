"""Writes AuditEvents in batches from one background thread per process.

Requests hand their event over and return; the thread writes what has queued up in one
transaction every ``interval_s`` (or at once when ``max_batch`` are waiting). A process
that exits normally flushes first; one that is killed loses at most the events of the
last interval. When the queue is full (the database is down or far behind), events are
written by the request thread itself rather than dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
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
        # ``None`` in the queue tells the thread to stop.
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queued)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0

    def submit(self, event: dict[str, Any]) -> None:
        """Queue an event for writing (written now if the queue is full)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._write([event], queued=False)

    def flush(self) -> None:
        """Write everything queued so far, including a batch the thread holds."""
        batch = self._take(self.max_batch)
        while batch:
            self._write(batch)
            batch = self._take(self.max_batch)
        if self._running():
            self._queue.join()

    def close(self) -> None:
        """Stop the thread after it wrote what it holds, then flush the rest."""
        if self._running():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=5)
            assert self._thread is not None
            self._thread.join(timeout=10)
        self.flush()

    def _running(self) -> bool:
        return (
            self._thread is not None and self._owner_pid == os.getpid() and self._thread.is_alive()
        )

    def _ensure_thread(self) -> None:
        if self._running():
            return
        with self._lock:
            if not self._running():  # new, forked (threads do not survive fork) or stopped
                self._owner_pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="fhir-ai-audit", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while True:
            first = self._queue.get()  # idle threads sleep here, without polling
            if first is None:
                self._queue.task_done()
                return
            time.sleep(self.interval_s)  # let a batch gather
            batch = [first, *self._take(self.max_batch - 1)]
            self._write(batch)

    def _take(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` queued events, without waiting; a stop marker is put back."""
        batch: list[dict[str, Any]] = []
        while len(batch) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.task_done()
                self._queue.put_nowait(None)
                break
            batch.append(item)
        return batch

    def _write(self, events: list[dict[str, Any]], queued: bool = True) -> None:
        try:
            with self.store.session(flush_wal=False) as session:
                session.create_many(events)
        except SQLAlchemyError as error:
            logger.error(
                "audit events not written",
                extra={"error_type": type(error).__name__, "events": len(events)},
            )
        finally:
            for _ in events if queued else ():
                self._queue.task_done()
