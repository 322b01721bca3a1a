"""fhir_ai.store.ai_results: the fixed-shape imaging read runs on the driver's cursor,
outside any transaction (its results on both backends: tests/integration)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from fhir_ai.settings import Settings
from fhir_ai.store.ai_results import ImagingResultsQuery
from fhir_ai.store.database import create_db_engine, upgrade_schema


def test_the_read_sends_only_its_select_and_never_waits_for_a_writer(tmp_path: Path) -> None:
    engine = create_db_engine(Settings(data_dir=tmp_path))
    upgrade_schema(engine)
    sent: list[tuple[int, str]] = []

    @event.listens_for(engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")  # a wait would fail at once
        dbapi_connection.set_trace_callback(lambda sql: sent.append((id(dbapi_connection), sql)))

    engine.dispose()  # new connections, traced
    query = ImagingResultsQuery(engine)
    with engine.connect() as writer, writer.begin():
        writer.execute(text("DELETE FROM cds_card"))  # holds the write lock, uncommitted
        rows = query.read("patient-1", datetime(2020, 1, 1), 5)
        writer_id = id(writer.connection.dbapi_connection)
    assert (rows.reports, rows.observations, rows.running) == ([], {}, 0)
    mine = [sql for connection, sql in sent if connection != writer_id]
    assert len(mine) == 1 and mine[0].startswith("WITH reports AS")
    engine.dispose()
