"""Writes records that no response waits for (audit events, issued CDS cards) in batches,
from one background thread per process.

Requests hand a record over with the *sink* that writes its kind (a function taking a
store session and a list of records) and return; the thread writes what has queued up
within ``interval_s`` of the first record (at once when ``max_batch`` are waiting) in one
transaction that does not wait for PostgreSQL's WAL flush, each sink in its own savepoint
so that one failing kind does not lose the others. On SQLite this also means one writer
per process instead of one per request thread: request threads never queue for the write
lock. A process that exits normally flushes first; one that is killed loses at most the
records of the last interval. When the queue is full (the database is down or far behind), a
request thread writes a batch of the backlog with its own record rather than drop it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.store.repository import ResourceStore, StoreSession

logger = logging.getLogger("fhir_ai.store")
T = TypeVar("T")
#: Writes a batch of records of one kind inside the writer's transaction.
Sink = Callable[[StoreSession, list[T]], None]
_Item = tuple[Sink[Any], Any]


class BackgroundWriter:
    """A per-process batching writer of records that no response waits for.

    ``max_batch`` caps the thread's transactions. Under sustained load the thread gets
    about one GIL turn in nine in a web process with eight busy request threads, and it
    holds SQLite's one write lock through all of its turns in a transaction: with batches
    of 500 records, two web processes' threads wrote 2,500 records a second each, fewer
    than the 3,400 a second their requests made (``bench/cds_latency.py --rounds 1
    --requests 12000``), and the queues filled; with 5,000, the thread takes what is
    waiting, the cost per batch is shared by ten times the records, and the queues rose
    to half full at most. ``help_batch`` caps what a request thread that finds the queue full
    writes for it (that request waits for the write).
    """

    def __init__(
        self,
        store: ResourceStore,
        interval_s: float = 0.2,
        max_batch: int = 5000,
        max_queued: int = 10_000,
        help_batch: int = 500,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.help_batch = help_batch
        # ``None`` in the queue tells the thread to stop.
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queued)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0

    def submit(self, sink: Sink[T], record: T) -> None:
        """Queue ``record`` for ``sink`` (written now if the queue is full)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((sink, record))
        except queue.Full:
            # The thread is far behind: help it with a whole batch of the backlog (one
            # transaction per record, as this once was, wrote ten times slower than the
            # thread and kept the queue full).
            backlog = self._take(self.help_batch - 1)
            self._write([*backlog, (sink, record)], queued=len(backlog))

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
                self._thread = threading.Thread(
                    target=self._run, name="fhir-ai-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while True:
            first = self._queue.get()  # idle threads sleep here, without polling
            if first is None:
                self._queue.task_done()
                return
            self._write(self._gather(first))

    def _gather(self, first: _Item) -> list[_Item]:
        """``first`` and what arrives within ``interval_s``, up to ``max_batch``.

        A full batch is written at once: under sustained load the thread never sleeps
        while records wait (sleeping a whole interval per batch capped it at
        ``max_batch`` records per interval, and a full queue makes request threads write
        themselves).
        """
        batch = [first]
        deadline = time.monotonic() + self.interval_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                batch += self._take(self.max_batch - len(batch))
                break
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:  # the stop marker: put back for ``_run``
                self._queue.task_done()
                self._queue.put_nowait(None)
                break
            batch.append(item)
        return batch

    def _take(self, limit: int) -> list[_Item]:
        """Up to ``limit`` queued records, without waiting; a stop marker is put back."""
        batch: list[_Item] = []
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

    def _write(self, items: list[_Item], queued: int | None = None) -> None:
        """Write ``items`` in one transaction; the first ``queued`` (all by default) came
        off the queue and are marked done."""
        by_sink: dict[Sink[Any], list[Any]] = {}
        for sink, record in items:
            by_sink.setdefault(sink, []).append(record)
        try:
            with self.store.session(flush_wal=False) as session:
                for sink, records in by_sink.items():
                    _write_one_kind(session, sink, records)
        except SQLAlchemyError as error:
            logger.error(
                "records not written",
                extra={"error_type": type(error).__name__, "records": len(items)},
            )
        finally:
            for _ in range(len(items) if queued is None else queued):
                self._queue.task_done()


def _write_one_kind(session: StoreSession, sink: Sink[Any], records: list[Any]) -> None:
    try:
        with session.connection.begin_nested():
            sink(session, records)
    except SQLAlchemyError as error:
        logger.error(
            "records not written",
            extra={
                "sink": getattr(sink, "__name__", "sink"),
                "error_type": type(error).__name__,
                "records": len(records),
            },
        )
