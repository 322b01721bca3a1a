"""Store sessions confined to a patient's compartment: reads, searches, includes, writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from fhir_ai.errors import Forbidden, Gone, NotFound
from fhir_ai.fhir.search.compartment import PatientCompartment, patient_compartment
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import SearchQuery, parse_query
from fhir_ai.store.repository import ResourceStore, StoreSession

REGISTRY = SearchRegistry.load()
CONFINED = ("Observation", "Patient", "DiagnosticReport")


def observation(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": subject},
        **extra,
    }


@pytest.fixture
def store(store: ResourceStore) -> ResourceStore:
    """The empty store (``conftest``) with two patients' records."""
    with store.session() as session:
        session.update({"resourceType": "Patient", "id": "p1"}, "p1")
        session.update({"resourceType": "Patient", "id": "p2"}, "p2")
        linked = {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/p1"}}]}
        session.update({**linked, "id": "p3"}, "p3")
        session.update(observation("Patient/p1", id="o1"), "o1")
        session.update(observation("Patient/p2", id="o2"), "o2")
        performed = observation("Group/g1", id="o3", performer=[{"reference": "Patient/p1"}])
        session.update(performed, "o3")
        session.update({"resourceType": "Practitioner", "id": "dr"}, "dr")
    return store


@contextmanager
def confined(store: ResourceStore, patient: str = "p1") -> Iterator[StoreSession]:
    compartment = PatientCompartment.of(patient, CONFINED, patient_compartment())
    with store.session(compartment=compartment) as session:
        yield session


def search(session: StoreSession, resource_type: str, params: str = "") -> SearchQuery:
    pairs = [(k, v) for k, _, v in (p.partition("=") for p in params.split("&") if p)]
    return parse_query(REGISTRY, resource_type, pairs, strict=True, default_count=50, max_count=100)


def found(session: StoreSession, resource_type: str, params: str = "") -> set[str]:
    result = session.search(search(session, resource_type, params), "https://x/fhir")
    return {m.id for m in result.matches}


def test_reads_outside_the_compartment_are_not_found(store: ResourceStore) -> None:
    with confined(store) as session:
        assert session.read("Observation", "o1").id == "o1"
        assert session.read("Observation", "o3").id == "o3"  # performer is a compartment link
        assert session.vread("Observation", "o1", 1).id == "o1"
        assert session.history("Observation", "o1", 10, 0)[1] == 1
        assert session.read("Patient", "p1").id == "p1"
        assert session.read("Patient", "p3").id == "p3"  # links to p1
        assert session.read("Practitioner", "dr").id == "dr"  # not confined
        for read in (
            lambda: session.read("Observation", "o2"),
            lambda: session.vread("Observation", "o2", 1),
            lambda: session.history("Observation", "o2", 10, 0),
            lambda: session.read("Patient", "p2"),
            lambda: session.read("Observation", "no-such-id"),
        ):
            with pytest.raises(NotFound) as raised:
                read()
            assert raised.value.message.endswith("is not known")


def test_a_confined_read_is_one_statement(store: ResourceStore) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with confined(store) as session:
            statements.clear()
            session.read("Observation", "o1")
            assert len(statements) == 1
            assert "search_reference" in statements[0]
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_searches_see_only_the_compartment(store: ResourceStore) -> None:
    with confined(store) as session:
        assert found(session, "Observation") == {"o1", "o3"}
        assert found(session, "Observation", "patient=p2") == set()
        assert found(session, "Observation", "status=final") == {"o1", "o3"}
        assert found(session, "Patient") == {"p1", "p3"}
        assert found(session, "Practitioner") == {"dr"}
        counted = session.search(search(session, "Observation", "_summary=count"), "")
        assert counted.total == 2
        assert set(session.count_matches(search(session, "Observation", "status=final"), "", 5))
        assert session.count_matches(search(session, "Observation", "_id=o2"), "") == []
    with confined(store, "p2") as session:
        assert found(session, "Observation") == {"o2"}
    with store.session() as session:
        assert found(session, "Observation") == {"o1", "o2", "o3"}


def test_includes_stay_in_the_compartment(store: ResourceStore) -> None:
    with store.session() as session:
        session.update(
            observation("Patient/p2", id="o4", performer=[{"reference": "Patient/p1"}]), "o4"
        )
    with confined(store) as session:
        query = search(session, "Observation", "_include=Observation:subject:Patient")
        result = session.search(query, "")
        assert {m.id for m in result.matches} == {"o1", "o3", "o4"}
        assert {i.id for i in result.included} == {"p1"}  # o4's subject p2 is left out
        reverse = search(session, "Patient", "_id=p1&_revinclude=Observation:performer")
        assert {i.id for i in session.search(reverse, "").included} == {"o3", "o4"}
    with confined(store, "p2") as session:
        reverse = search(session, "Patient", "_revinclude=Observation:performer")
        result = session.search(reverse, "")
        assert {m.id for m in result.matches} == {"p2"}
        assert {i.id for i in result.included} == set()  # o3, o4 name p1 as performer


def test_writes_must_stay_in_the_compartment(store: ResourceStore) -> None:
    with confined(store) as session:
        created = session.create(observation("Patient/p1"))
        assert created.content is not None
        session.update(observation("Patient/p1", id="o1", status="amended"), "o1")
        session.update(observation("Patient/p1", id="new-1"), "new-1")  # create with an id
        session.update({"resourceType": "Patient", "id": "p1", "gender": "other"}, "p1")
    forbidden: list[Any] = [
        lambda s: s.create(observation("Patient/p2")),
        lambda s: s.create(observation("Group/g1")),
        lambda s: s.update(observation("Patient/p1", id="o2"), "o2"),  # stored one is p2's
        lambda s: s.update(observation("Patient/p2", id="o1"), "o1"),  # moving it out
        lambda s: s.update(observation("Patient/p2", id="new-2"), "new-2"),
        lambda s: s.create({"resourceType": "Patient"}),
        lambda s: s.update({"resourceType": "Patient", "id": "p3"}, "p3"),  # linked, not p1
        lambda s: s.update({"resourceType": "Patient", "id": "p2"}, "p2"),
    ]
    for write in forbidden:
        with pytest.raises(Forbidden), confined(store) as session:
            write(session)
    with confined(store) as session, pytest.raises(NotFound):
        session.delete("Observation", "o2")
    with store.session() as session:
        assert session.read("Observation", "o2").content["subject"]["reference"] == "Patient/p2"  # type: ignore[index]
        assert session.read("Observation", "o1").version_id == 2


def test_a_deleted_resource_stays_in_the_compartment_of_its_last_live_version(
    store: ResourceStore,
) -> None:
    with confined(store) as session:
        assert session.delete("Observation", "o1") is True
    with confined(store) as session:
        with pytest.raises(Gone):
            session.read("Observation", "o1")
        with pytest.raises(Gone):
            session.vread("Observation", "o1", 2)
        first = session.vread("Observation", "o1", 1).content
        assert first is not None and first["subject"] == {"reference": "Patient/p1"}
        versions, total = session.history("Observation", "o1", 10, 0)
        assert total == 2 and [method for _, method in versions] == ["DELETE", "POST"]
        assert session.delete("Observation", "o1") is False  # already deleted: a no-op
        revived = session.update(observation("Patient/p1", id="o1"), "o1")
        assert revived.created and revived.stored.version_id == 3


def test_another_patients_deleted_resource_stays_not_found(store: ResourceStore) -> None:
    with store.session() as session:
        session.delete("Observation", "o2")
    with confined(store) as session:
        for call in (
            lambda: session.read("Observation", "o2"),
            lambda: session.vread("Observation", "o2", 1),
            lambda: session.history("Observation", "o2", 10, 0),
            lambda: session.delete("Observation", "o2"),
        ):
            with pytest.raises(NotFound):
                call()
    with confined(store) as session, pytest.raises(Forbidden):  # no revival of p2's record
        session.update(observation("Patient/p1", id="o2"), "o2")
