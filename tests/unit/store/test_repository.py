"""The store keeps versions and keeps the search index in step with the current version."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fhir_ai.errors import Gone, NotFound, PreconditionFailed
from fhir_ai.store.repository import ResourceStore
from fhir_ai.store.schema import resource_versions, resources, search_tokens


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
        session.create({"resourceType": "Patient"})  # rows before: the pks go on from there
        stored = session.create_many(reports)
    assert [s.version_id for s in stored] == [1, 1, 1]
    assert len({s.id for s in stored}) == 3
    assert _status_rows(store, "final") == 2
    with store.session(read_only=True) as session:  # each row's index and version are its own
        indexed = session.connection.execute(
            select(resources.c.id, search_tokens.c.code, func.count(resource_versions.c.version_id))
            .join(search_tokens, search_tokens.c.resource_pk == resources.c.pk)
            .join(resource_versions, resource_versions.c.resource_pk == resources.c.pk)
            .where(search_tokens.c.param == "status")
            .group_by(resources.c.id, search_tokens.c.code)
        ).all()
    assert sorted(indexed) == sorted((s.id, s.content["status"], 1) for s in stored)  # type: ignore[index]
    with store.session(read_only=True) as session:
        assert session.read("DiagnosticReport", stored[0].id).content["status"] == "preliminary"  # type: ignore[index]
        assert session.history("DiagnosticReport", stored[1].id, 10, 0)[1] == 1


def _version_contents(store: ResourceStore, resource_id: str) -> list[str | None]:
    """The ``status`` stored in each version row (None: no content there), oldest first."""
    with store.session(read_only=True) as session:
        rows = session.connection.execute(
            select(resource_versions.c.content)
            .join(resources, resources.c.pk == resource_versions.c.resource_pk)
            .where(resources.c.id == resource_id)
            .order_by(resource_versions.c.version_id)
        ).scalars()
        return [content["status"] if content else None for content in rows]


def test_the_current_version_is_stored_once(store: ResourceStore) -> None:
    """Its content is the resource row's; a version row gets it when superseded, so every
    version still reads, vreads and lists in the history with its own content."""
    report = {"resourceType": "DiagnosticReport", "status": "registered", "code": {"text": "x"}}
    with store.session() as session:
        created = session.create(report).id
        bulk = session.create_many([report])[0].id
    assert _version_contents(store, created) == [None]
    assert _version_contents(store, bulk) == [None]
    for status in ("preliminary", "final"):
        with store.session() as session:
            session.update({**report, "status": status}, created)
    assert _version_contents(store, created) == ["registered", "preliminary", None]
    with store.session(read_only=True) as session:
        contents = [session.vread("DiagnosticReport", created, v).content for v in (1, 2, 3)]
        history = session.history("DiagnosticReport", created, 10, 0)[0]
    assert [c["status"] for c in contents] == ["registered", "preliminary", "final"]  # type: ignore[index]
    assert [s.content["status"] for s, _ in history] == ["final", "preliminary", "registered"]  # type: ignore[index]

    with store.session() as session:
        session.delete("DiagnosticReport", created)
    assert _version_contents(store, created) == ["registered", "preliminary", "final", None]
    with store.session() as session:  # recreated after the deletion
        session.update({**report, "status": "amended"}, created)
    with store.session(read_only=True) as session:
        history = session.history("DiagnosticReport", created, 10, 0)[0]
        with pytest.raises(Gone):
            session.vread("DiagnosticReport", created, 4)
    assert [m for _, m in history] == ["PUT", "DELETE", "PUT", "PUT", "POST"]
    statuses = [s.content["status"] if s.content else None for s, _ in history]
    assert statuses == ["amended", None, "final", "preliminary", "registered"]
