"""The fixed-shape AI imaging read (``fhir_ai/store/ai_results.py``) on both backends:
what the equivalent FHIR searches would find, in one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from fhir_ai.fhir.ai_results import IMAGING_ANALYSIS
from fhir_ai.store.ai_results import ImagingResultsQuery
from fhir_ai.store.database import create_db_engine
from tests.fhir_helpers import ai_report_bundle, create, new_patient, post

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def _report(client: FlaskClient, patient: str, probability: float, days_ago: float) -> str:
    response = post(
        client, "/fhir", ai_report_bundle(patient, probability, NOW - timedelta(days=days_ago))
    )
    assert response.status_code == 200, response.json
    location = response.json["entry"][1]["response"]["location"]
    return str(location.split("/")[1])


def _task(client: FlaskClient, patient: str, status: str) -> None:
    code = {"coding": [{"system": IMAGING_ANALYSIS[0], "code": IMAGING_ANALYSIS[1]}]}
    task = {"resourceType": "Task", "status": status, "intent": "order", "code": code}
    create(client, {**task, "for": {"reference": f"Patient/{patient}"}})


def _read(app: Flask, patient: str, days: int, limit: int) -> tuple[list[str], set[str], int]:
    since = (NOW - timedelta(days=days)).replace(tzinfo=None)
    rows = ImagingResultsQuery(app.extensions["fhir_ai.engine"]).read(patient, since, limit)
    return [r["id"] for r in rows.reports], set(rows.observations), rows.running


def test_newest_ai_reports_of_the_patient_with_their_results(
    backend_app: Flask, client: FlaskClient
) -> None:
    patient, other = new_patient(client), new_patient(client)
    newest = _report(client, patient, 0.9, 1)
    middle = _report(client, patient, 0.2, 3)
    oldest = _report(client, patient, 0.7, 10)
    _report(client, patient, 0.8, 40)  # outside a 30-day window
    _report(client, other, 0.9, 0.5)  # another patient's
    plain = {  # not AI-labelled: never read
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "Chest X-ray"},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    create(client, plain)
    _task(client, patient, "in-progress")
    _task(client, patient, "requested")
    _task(client, patient, "completed")
    _task(client, other, "in-progress")

    reports, observations, running = _read(backend_app, patient, 30, 10)
    assert reports == [newest, middle, oldest]
    assert len(observations) == 3 and all(o.startswith("Observation/") for o in observations)
    assert running == 2
    assert _read(backend_app, patient, 30, 2)[0] == [newest, middle]
    assert _read(backend_app, patient, 2, 10)[0] == [newest]


def test_deleted_results_and_reports_are_not_read(backend_app: Flask, client: FlaskClient) -> None:
    patient = new_patient(client)
    report = _report(client, patient, 0.9, 1)
    kept = _report(client, patient, 0.9, 2)
    stored = client.get(f"/fhir/DiagnosticReport/{kept}").json
    observation = stored["result"][0]["reference"]
    assert client.delete(f"/fhir/{observation}").status_code in (200, 204)
    assert client.delete(f"/fhir/DiagnosticReport/{report}").status_code in (200, 204)
    reports, observations, running = _read(backend_app, patient, 30, 10)
    assert (reports, observations, running) == ([kept], set(), 0)
    assert _read(backend_app, patient, 30, 1)[0] == [kept]  # the deleted newer one is passed


def test_a_report_moved_to_another_patient_is_read_as_theirs(
    backend_app: Flask, client: FlaskClient
) -> None:
    first, second = new_patient(client), new_patient(client)
    moved = _report(client, first, 0.9, 1)
    stayed = _report(client, first, 0.3, 2)
    stored = client.get(f"/fhir/DiagnosticReport/{moved}").json
    stored["subject"] = {"reference": f"Patient/{second}"}
    response = client.put(f"/fhir/DiagnosticReport/{moved}", json=stored)
    assert response.status_code == 200, response.json
    assert _read(backend_app, first, 30, 10)[0] == [stayed]
    assert _read(backend_app, second, 30, 10)[0] == [moved]


def test_reports_of_the_same_date_are_read_last_written_first(
    backend_app: Flask, client: FlaskClient
) -> None:
    patient = new_patient(client)
    written = [_report(client, patient, 0.5, 1) for _ in range(3)]
    assert _read(backend_app, patient, 30, 10)[0] == written[::-1]
    assert _read(backend_app, patient, 30, 2)[0] == written[:0:-1]


def test_the_read_gives_its_connection_back_as_it_found_it(backend_app: Flask) -> None:
    """PostgreSQL: out of the autocommit the read runs in; SQLite: outside a transaction."""
    settings = backend_app.extensions["fhir_ai.settings"].model_copy(update={"db_pool_size": 1})
    engine = create_db_engine(settings)
    try:
        query = ImagingResultsQuery(engine)
        assert query.read("nobody", NOW - timedelta(days=30), 5).running == 0
        connection = engine.raw_connection()  # the one pooled connection, again
        try:
            if engine.dialect.name == "postgresql":
                assert connection.driver_connection.autocommit is False  # type: ignore[union-attr]
            else:
                assert connection.driver_connection.in_transaction is False  # type: ignore[union-attr]
        finally:
            connection.close()
        with engine.begin() as transaction:  # and SQLAlchemy's transactions work on it
            assert transaction.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_since_is_compared_as_the_index_stores_dates(
    backend_app: Flask, client: FlaskClient
) -> None:
    """A study dated to the second covers that second: it is read while ``since`` is
    before the second's end, and not from its end on (aware or naive, with or without a
    fraction of a second)."""
    patient = new_patient(client)
    report = _report(client, patient, 0.9, 1)
    end = NOW - timedelta(days=1) + timedelta(seconds=1)  # NOW has no fraction of a second
    query = ImagingResultsQuery(backend_app.extensions["fhir_ai.engine"])
    for since in (end, end.replace(tzinfo=None)):
        assert query.read(patient, since, 5).reports == []
        before = since - timedelta(microseconds=1)
        assert [r["id"] for r in query.read(patient, before, 5).reports] == [report]
