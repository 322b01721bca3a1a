"""fhir_ai.store.bulk: rows go in as SQLAlchemy would send them, in few statements."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from fhir_ai.settings import Settings
from fhir_ai.store.bulk import ROWS_PER_STATEMENT, insert_rows
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.schema import cds_cards, resources, search_dates


def test_sqlite_rows_go_in_a_statement_per_chunk_with_their_types(tmp_path: Path) -> None:
    engine = create_db_engine(Settings(data_dir=tmp_path))
    upgrade_schema(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    start = datetime(2026, 1, 1, 12, 30, 15, 123456)
    count = ROWS_PER_STATEMENT + 7
    dates = [
        {
            "resource_pk": 1,
            "resource_type": "Basic",
            "param": "date",
            "low": start + timedelta(minutes=n),
            "high": start + timedelta(minutes=n, seconds=1),
        }
        for n in range(count)
    ]
    content: dict[str, Any] = {"resourceType": "Basic", "id": "b1", "text": {"div": "é"}}
    resource = {
        "pk": 1,
        "resource_type": "Basic",
        "id": "b1",
        "version_id": 1,
        "last_updated": start,
        "deleted": False,
        "content": content,
    }
    card = {
        "card_uuid": "c1",
        "service_id": "s",
        "hook_instance": "h",
        "model_version": None,
        "indicator": "info",
        "created_at": start,
    }
    with engine.begin() as connection:
        statements.clear()
        insert_rows(connection, resources, [resource])
        insert_rows(connection, search_dates, dates)
        insert_rows(connection, cds_cards, [card])
        insert_rows(connection, cds_cards, [])
    assert len(statements) == 4  # one resource, two chunks of dates, one card
    with engine.connect() as connection:
        read = connection.execute(select(search_dates).order_by(search_dates.c.low))
        assert [dict(row._mapping) for row in read] == dates
        stored = connection.execute(select(resources.c.content, resources.c.deleted)).one()
        assert stored == (content, False)
        assert connection.execute(select(cds_cards)).one()._asdict() == card
    engine.dispose()


def test_a_sqlite_library_with_fewer_parameters_gets_smaller_statements(tmp_path: Path) -> None:
    """SQLite before 3.32 bounds a statement at 999 parameters: 166 rows of 6 columns."""
    engine = create_db_engine(Settings(data_dir=tmp_path))
    upgrade_schema(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    day = datetime(2026, 1, 1)
    cards = [
        {
            "card_uuid": f"card-{n}",
            "service_id": "s",
            "hook_instance": "h",
            "model_version": "m",
            "indicator": "info",
            "created_at": day,
        }
        for n in range(400)
    ]
    with engine.begin() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        statements.clear()
        insert_rows(connection, cds_cards, cards)
    assert len(statements) == 3  # 166 + 166 + 68 rows of 6 columns
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(cds_cards)).scalar_one() == 400
    engine.dispose()
