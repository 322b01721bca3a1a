"""``fhir-ai db reindex``: resources whose index rows are missing (written before a search
parameter existed) are found by searches again; ``fhir-ai db upgrade`` does it by itself
for exactly the types whose search parameters changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, event, update

from fhir_ai.cli import main
from fhir_ai.store import repository
from fhir_ai.store.schema import search_index_state, search_references
from tests.conftest import build_app, make_settings
from tests.fhir_helpers import new_patient, post

pytestmark = pytest.mark.integration


def _observation(client: FlaskClient, patient: str) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    return str(post(client, "/fhir/Observation", body).json["id"])


def _found(client: FlaskClient, patient: str) -> set[str]:
    bundle = client.get(f"/fhir/Observation?subject=Patient/{patient}").json
    return {entry["resource"]["id"] for entry in bundle.get("entry", [])}


def _forget_references(app: Flask) -> None:
    with app.extensions["fhir_ai.engine"].begin() as connection:
        connection.execute(
            delete(search_references).where(search_references.c.resource_type == "Observation")
        )


def test_reindex_restores_what_searches_find(backend_app: Flask, client: FlaskClient) -> None:
    patient = new_patient(client)
    observations = {_observation(client, patient) for _ in range(3)}
    _forget_references(backend_app)
    assert _found(client, patient) == set()
    store = backend_app.extensions["fhir_ai.store"]
    assert store.reindex("Observation", batch_size=2) >= 3  # several batches
    assert _found(client, patient) == observations


def test_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app(make_settings(tmp_path))
    client = app.test_client()
    patient = new_patient(client)
    observation = _observation(client, patient)
    _forget_references(app)
    monkeypatch.setenv("FHIR_AI_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["db", "reindex", "--type", "Observation"])
    assert result.exit_code == 0, result.output
    assert "reindexed 1 resources of type Observation" in result.output
    assert _found(client, patient) == {observation}


def _predate_observation_parameters(app: Flask) -> None:
    """As if Observation's search parameters changed since its rows were extracted."""
    with app.extensions["fhir_ai.engine"].begin() as connection:
        connection.execute(
            update(search_index_state)
            .where(search_index_state.c.resource_type == "Observation")
            .values(fingerprint="extracted-by-an-older-release")
        )


def test_an_upgrade_reindexes_the_types_whose_parameters_changed(
    backend_app: Flask, client: FlaskClient
) -> None:
    store = backend_app.extensions["fhir_ai.store"]
    store.refresh_index()  # this shared database: every type current from here
    assert store.stale_index_types() == []
    patient = new_patient(client)
    observations = {_observation(client, patient) for _ in range(3)}
    _forget_references(backend_app)
    assert store.refresh_index() == {}  # nothing changed: nothing is reindexed
    assert _found(client, patient) == set()
    _predate_observation_parameters(backend_app)
    assert store.stale_index_types() == ["Observation"]
    assert store.refresh_index(batch_size=2)["Observation"] >= 3
    assert _found(client, patient) == observations
    assert store.stale_index_types() == []


def test_every_type_stale_is_rebuilt_in_one_pass_that_reports_progress(
    backend_app: Flask,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An upgrade that changes how every type is indexed reads the table once, not once
    per type, and says how far it is as it goes."""
    store = backend_app.extensions["fhir_ai.store"]
    patient = new_patient(client)
    observation = _observation(client, patient)
    engine = backend_app.extensions["fhir_ai.engine"]
    with engine.begin() as connection:
        connection.execute(delete(search_index_state))
    _forget_references(backend_app)
    stale = store.stale_index_types()
    assert stale == store.registry.resource_types and len(stale) > 2  # every supported type
    batches: list[tuple[int, frozenset[str]]] = []  # (after which pk, of which types)

    def record_batch(*args: Any) -> None:
        statement, context = args[2], args[4]
        if statement.lstrip().startswith("SELECT resource.pk, resource.resource_type"):
            bound = context.compiled_parameters[0]
            kinds = frozenset(v for k, v in bound.items() if k.startswith("resource_type_1_"))
            batches.append((bound["pk_1"], kinds))

    event.listen(engine, "before_cursor_execute", record_batch)
    monkeypatch.setattr(repository, "REINDEX_PROGRESS_S", 0.0)
    try:
        with caplog.at_level("INFO", logger="fhir_ai.store"):
            done = store.refresh_index(batch_size=100)
    finally:
        event.remove(engine, "before_cursor_execute", record_batch)
    afters = [after for after, _ in batches]
    assert afters[0] == 0 and afters == sorted(set(afters))  # one pass, ever further on
    assert {kinds for _, kinds in batches} == {frozenset(stale)}  # each batch: every type
    assert set(done) == set(stale) and done["Patient"] >= 1 and done["Observation"] >= 1
    assert any("search index rebuild:" in r.getMessage() for r in caplog.records)
    assert store.stale_index_types() == []
    assert observation in _found(client, patient)


def test_db_upgrade_rebuilds_a_stale_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app(make_settings(tmp_path))
    client = app.test_client()
    patient = new_patient(client)
    observation = _observation(client, patient)
    _forget_references(app)  # a database written before fingerprints: every type stale
    monkeypatch.setenv("FHIR_AI_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "rebuilt: 1 Observation resources" in result.output
    assert "rebuilt: 1 Patient resources" in result.output
    assert _found(client, patient) == {observation}
    again = CliRunner().invoke(main, ["db", "upgrade"])
    assert again.exit_code == 0 and "rebuilt" not in again.output
