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
import logging
import os
import threading
import time
from collections import deque
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

    A hand-over is an append under a lock. It wakes the thread only when the thread waits
    for it: idle, for a first record; gathering, for the ``max_batch``-th. (A
    ``queue.Queue`` woke the gathering thread on every record: a futex wake by the
    request thread, and a GIL turn of the writer's to put the record in its list, 5% of
    a web process's GIL time under sustained CDS load.)
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
        self.max_queued = max_queued
        self.help_batch = help_batch
        lock = threading.Lock()
        self._pending: deque[_Item] = deque()
        self._arrived = threading.Condition(lock)  # the thread waits here for records
        self._settled = threading.Condition(lock)  # flush waits here for the thread's batch
        self._wake_at: int | None = None  # pending records the waiting thread waits for
        self._in_hand = 0  # records the thread took and is writing
        self._stopping = False
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0

    def submit(self, sink: Sink[T], record: T) -> None:
        """Queue ``record`` for ``sink`` (written now if the queue is full)."""
        self._ensure_thread()
        with self._arrived:
            if len(self._pending) < self.max_queued:
                self._pending.append((sink, record))
                if self._wake_at is not None and len(self._pending) >= self._wake_at:
                    self._wake_at = None
                    self._arrived.notify()
                return
            # The thread is far behind: help it with a whole batch of the backlog (one
            # transaction per record, as this once was, wrote ten times slower than the
            # thread and kept the queue full).
            backlog = self._take(self.help_batch - 1)
        self._write([*backlog, (sink, record)])

    def flush(self) -> None:
        """Write everything queued so far, and wait for a batch the thread holds."""
        while True:
            with self._arrived:
                batch = self._take(self.max_batch)
            if not batch:
                break
            self._write(batch)
        with self._settled:
            self._settled.wait_for(lambda: self._in_hand == 0, timeout=60)

    def close(self) -> None:
        """Stop the thread after it wrote what it holds, then flush the rest."""
        if self._running():
            with self._arrived:
                self._stopping = True
                self._arrived.notify()
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
        with self._start_lock:
            if not self._running():  # new, forked (threads do not survive fork) or stopped
                self._owner_pid = os.getpid()
                self._stopping = False
                self._in_hand = 0  # a forked child holds none of its parent's batch
                self._thread = threading.Thread(
                    target=self._run, name="fhir-ai-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            try:
                self._write(batch)
            finally:
                with self._settled:
                    self._in_hand = 0
                    self._settled.notify_all()

    def _gather(self) -> list[_Item] | None:
        """What has queued up within ``interval_s`` of the first record, up to
        ``max_batch`` (taken at once when that many wait: under sustained load the thread
        never sleeps while records wait); None when told to stop.
        """
        with self._arrived:
            while not self._pending:  # idle threads sleep here, without polling
                if self._stopping:
                    return None
                self._wake_at = 1
                self._arrived.wait()
            deadline = time.monotonic() + self.interval_s
            while len(self._pending) < self.max_batch and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake_at = self.max_batch
                self._arrived.wait(remaining)
            self._wake_at = None
            batch = self._take(self.max_batch)
            self._in_hand = len(batch)
            return batch

    def _take(self, limit: int) -> list[_Item]:
        """Up to ``limit`` queued records (the caller holds the lock)."""
        pending = self._pending
        return [pending.popleft() for _ in range(min(limit, len(pending)))]

    def _write(self, items: list[_Item]) -> None:
        """Write ``items`` in one transaction, each kind in its own savepoint (none when
        there are none: a flush may have taken what the thread woke up for)."""
        if not items:
            return
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
