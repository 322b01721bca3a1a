"""The background writer: nothing lost on flush, batches written from its thread, one
failing kind of record does not lose the others."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text

from fhir_ai.audit import write_audit_events
from fhir_ai.fhir.search.query import SearchQuery
from fhir_ai.store.background import BackgroundWriter, Sink
from fhir_ai.store.cds import CdsStore, IssuedCard, write_issued_cards
from fhir_ai.store.repository import ResourceStore, StoreSession
from tests.process_helpers import wait_for


def _event(n: int) -> dict[str, object]:
    return {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-11-23T10:00:00Z",
        "agent": [{"requestor": True, "who": {"display": f"client {n}"}}],
        "source": {"observer": {"display": "fhir-ai"}},
    }


def _count(store: ResourceStore) -> int:
    with store.session(read_only=True) as session:
        return session.search(SearchQuery("AuditEvent", summary_count=True), "").total or 0


def test_events_are_written_in_the_background_and_on_flush(store: ResourceStore) -> None:
    writer = BackgroundWriter(store, interval_s=0.05, max_batch=7)
    for n in range(30):
        writer.submit(write_audit_events, _event(n))
    assert wait_for(lambda: _count(store) == 30, timeout=10, interval=0.05)
    for n in range(5):
        writer.submit(write_audit_events, _event(n))
    writer.flush()
    assert _count(store) == 35
    writer.close()


def test_a_full_batch_is_written_without_waiting_for_the_interval(store: ResourceStore) -> None:
    writer = BackgroundWriter(store, interval_s=120, max_batch=5)
    for n in range(5):
        writer.submit(write_audit_events, _event(n))
    assert wait_for(lambda: _count(store) == 5, timeout=30, interval=0.05)  # interval: 120 s
    writer.close()


def test_a_full_queue_writes_in_the_caller(store: ResourceStore) -> None:
    writer = BackgroundWriter(store, interval_s=0.5, max_queued=1)
    for n in range(3):
        writer.submit(write_audit_events, _event(n))
    writer.close()
    assert _count(store) == 3


def _recording_sink() -> tuple[list[list[int]], Sink[int]]:
    """A sink that keeps each batch it is given, and the list it keeps them in."""
    batches: list[list[int]] = []

    def sink(_session: StoreSession, records: list[int]) -> None:
        batches.append(records)

    return batches, sink


class _StalledWriter(BackgroundWriter):
    """A writer whose thread does not start taking records until ``resume`` is set."""

    def __init__(self, store: ResourceStore, **options: Any) -> None:
        super().__init__(store, **options)
        self.resume = threading.Event()

    def _run(self) -> None:
        self.resume.wait(timeout=30)
        super()._run()


def test_a_caller_meeting_a_full_queue_writes_the_backlog_as_one_batch(
    store: ResourceStore,
) -> None:
    batches, sink = _recording_sink()
    writer = _StalledWriter(store, interval_s=0.05, max_queued=4, help_batch=3)
    for n in range(5):  # four fill the queue; the fifth's caller writes two of them with its own
        writer.submit(sink, n)
    assert batches == [[0, 1, 4]]
    writer.resume.set()
    writer.submit(sink, 5)
    writer.close()
    assert batches == [[0, 1, 4], [2, 3, 5]]


def _failing_sink(session: StoreSession, records: list[int]) -> None:
    session.connection.execute(text("INSERT INTO no_such_table VALUES (1)"))


def test_a_failing_kind_does_not_lose_the_others(store: ResourceStore) -> None:
    writer = BackgroundWriter(store, interval_s=0.5)  # the three land in one batch
    writer.submit(write_audit_events, _event(1))
    writer.submit(_failing_sink, 1)
    writer.submit(write_issued_cards, [IssuedCard("card-1", "svc", "hook-1", "m@1")])
    writer.close()
    assert _count(store) == 1
    assert CdsStore(store.engine).card_counts() == {("svc", "unknown"): 1}


def test_flush_waits_for_the_batch_the_thread_is_writing(store: ResourceStore) -> None:
    started, release = threading.Event(), threading.Event()
    written: list[int] = []

    def slow_sink(_session: StoreSession, records: list[int]) -> None:
        started.set()
        release.wait(timeout=10)
        written.extend(records)

    writer = BackgroundWriter(store, interval_s=0.01)
    writer.submit(slow_sink, 1)
    assert started.wait(timeout=10)  # the thread holds the record, nothing is queued
    flushing = threading.Thread(target=writer.flush)
    flushing.start()
    flushing.join(timeout=0.3)
    assert flushing.is_alive()  # flush has not returned while the batch is being written
    release.set()
    flushing.join(timeout=10)
    assert not flushing.is_alive()
    assert written == [1]
    writer.close()


def test_records_handed_over_while_the_thread_gathers_make_one_batch(
    store: ResourceStore,
) -> None:
    batches, sink = _recording_sink()
    writer = BackgroundWriter(store, interval_s=0.5)
    for n in range(20):
        writer.submit(sink, n)
    writer.close()
    assert batches == [list(range(20))]
