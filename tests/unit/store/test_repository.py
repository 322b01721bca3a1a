"""The store keeps versions and keeps the search index in step with the current version."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fhir_ai.errors import Gone, NotFound, PreconditionFailed
from fhir_ai.store.repository import ResourceStore
from fhir_ai.store.schema import search_tokens


def _status_rows(store: ResourceStore, code: str) -> int:
    with store.session() as session:
        return int(
            session.connection.execute(
                select(func.count()).where(
                    search_tokens.c.param == "status", search_tokens.c.code == code
                )
            ).scalar_one()
        )


def test_versions_and_index_follow_writes(store: ResourceStore) -> None:
    report = {"resourceType": "DiagnosticReport", "status": "preliminary", "code": {"text": "x"}}
    with store.session() as session:
        stored = session.create(report)
    assert stored.version_id == 1 and stored.content is not None
    assert stored.content["meta"]["versionId"] == "1"
    assert _status_rows(store, "preliminary") == 1

    with store.session() as session:
        result = session.update({**report, "status": "final"}, stored.id, if_match=1)
    assert result.stored.version_id == 2 and not result.created
    assert _status_rows(store, "preliminary") == 0 and _status_rows(store, "final") == 1

    with store.session() as session, pytest.raises(PreconditionFailed):
        session.update(report, stored.id, if_match=1)

    with store.session() as session:
        assert session.delete("DiagnosticReport", stored.id) is True
        assert session.delete("DiagnosticReport", stored.id) is False
    assert _status_rows(store, "final") == 0
    with store.session() as session:
        with pytest.raises(Gone):
            session.read("DiagnosticReport", stored.id)
        assert session.vread("DiagnosticReport", stored.id, 1).content["status"] == "preliminary"  # type: ignore[index]
        versions, total = session.history("DiagnosticReport", stored.id, 10, 0)
    assert total == 3 and [m for _, m in versions] == ["DELETE", "PUT", "POST"]


def test_a_failed_session_writes_nothing(store: ResourceStore) -> None:
    patient = {"resourceType": "Patient", "gender": "female"}
    with pytest.raises(RuntimeError), store.session() as session:
        created = session.create(patient)
        raise RuntimeError("boom")
    with store.session() as session, pytest.raises(NotFound):
        session.read("Patient", created.id)


def test_create_many_stores_versions_and_index_in_bulk(store: ResourceStore) -> None:
    reports = [
        {"resourceType": "DiagnosticReport", "status": status, "code": {"text": "x"}}
        for status in ("preliminary", "final", "final")
    ]
    with store.session() as session:
        stored = session.create_many(reports)
    assert [s.version_id for s in stored] == [1, 1, 1]
    assert len({s.id for s in stored}) == 3
    assert _status_rows(store, "final") == 2
    with store.session(read_only=True) as session:
        assert session.read("DiagnosticReport", stored[0].id).content["status"] == "preliminary"  # type: ignore[index]
        assert session.history("DiagnosticReport", stored[1].id, 10, 0)[1] == 1
