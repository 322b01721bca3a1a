"""fhir_ai.store.bulk on both backends: rows read back as they were given."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from fhir_ai.ids import time_ordered_uuid
from fhir_ai.store.bulk import ROWS_PER_STATEMENT, insert_rows
from fhir_ai.store.schema import resources, search_dates

pytestmark = pytest.mark.integration


def test_rows_of_every_column_type_read_back_as_given(backend_app: Flask) -> None:
    engine = backend_app.extensions["fhir_ai.engine"]
    resource_id = time_ordered_uuid()
    content: dict[str, Any] = {"resourceType": "Basic", "id": resource_id, "text": {"div": "é"}}
    start = datetime(2026, 1, 1, 12, 30, 15, 123456)
    with engine.begin() as connection:
        insert_rows(
            connection,
            resources,
            [
                {
                    "resource_type": "Basic",
                    "id": resource_id,
                    "version_id": 1,
                    "last_updated": start,
                    "deleted": False,
                    "content": content,
                }
            ],
        )
        pk = connection.execute(
            select(resources.c.pk).where(resources.c.id == resource_id)
        ).scalar_one()
        dates = [
            {
                "resource_pk": pk,
                "resource_type": "Basic",
                "param": f"p{n}",
                "low": start + timedelta(minutes=n),
                "high": start + timedelta(minutes=n, seconds=1),
            }
            for n in range(ROWS_PER_STATEMENT + 3)
        ]
        insert_rows(connection, search_dates, dates)
    with engine.begin() as connection:
        stored = connection.execute(
            select(resources.c.content, resources.c.deleted, resources.c.last_updated).where(
                resources.c.pk == pk
            )
        ).one()
        assert stored == (content, False, start)
        read = connection.execute(
            select(search_dates.c.resource_pk, search_dates.c.resource_type)
            .add_columns(search_dates.c.param, search_dates.c.low, search_dates.c.high)
            .where(search_dates.c.resource_pk == pk)
            .order_by(search_dates.c.low)
        )
        assert [dict(row._mapping) for row in read] == dates
        connection.execute(delete(resources).where(resources.c.pk == pk))
