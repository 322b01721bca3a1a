"""The batching audit writer: nothing lost on flush, batches written from its thread."""

from __future__ import annotations

import time
from pathlib import Path

from fhir_ai.audit_writer import AuditWriter
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import SearchQuery
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.repository import ResourceStore


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


def test_events_are_written_in_the_background_and_on_flush(tmp_path: Path) -> None:
    engine = create_db_engine(Settings(data_dir=tmp_path))
    upgrade_schema(engine)
    store = ResourceStore(engine, SearchRegistry.load())
    writer = AuditWriter(store, interval_s=0.05, max_batch=7)
    for n in range(30):
        writer.submit(_event(n))
    deadline = time.monotonic() + 10
    while _count(store) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _count(store) == 30
    for n in range(5):
        writer.submit(_event(n))
    writer.flush()
    assert _count(store) == 35
    writer.close()


def test_a_full_queue_writes_in_the_caller(tmp_path: Path) -> None:
    engine = create_db_engine(Settings(data_dir=tmp_path))
    upgrade_schema(engine)
    store = ResourceStore(engine, SearchRegistry.load())
    writer = AuditWriter(store, interval_s=5, max_queued=1)
    for n in range(3):
        writer.submit(_event(n))
    writer.close()
    assert _count(store) == 3
