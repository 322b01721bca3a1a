"""SMART ``patient/`` scopes through the real app, with signed tokens, on SQLite and PostgreSQL.

A patient-scoped token reaches only its patient's compartment (FHIR R4
CompartmentDefinition/patient): its reads of other patients' records are 404, its
searches are filtered, its includes cannot leak, its writes cannot leave the compartment.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhir_ai.fhir.resources import validate_resource
from tests.conftest import build_app
from tests.smart_helpers import Token, auth, smart_settings, token_factory

pytestmark = pytest.mark.integration
FHIR_JSON = "application/fhir+json"
CODE = "http://loinc.org|8867-4"


@pytest.fixture(scope="module")
def token(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> Token:
    return token_factory(ec_key, rsa_key)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> Iterator[Flask]:
    overrides: dict[str, Any] = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    tmp = tmp_path_factory.mktemp(f"patient-scopes-{request.param}")
    app = build_app(smart_settings(tmp, ec_key, rsa_key, **overrides))
    yield app
    app.extensions["fhir_ai.writer"].flush()  # audit events, before the database goes


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def send(
    client: FlaskClient, method: str, path: str, body: Any, header: str, **headers: str
) -> TestResponse:
    return client.open(
        path,
        method=method,
        data=json.dumps(body),
        content_type=FHIR_JSON,
        headers={**auth(header), **headers},
    )


def observation(subject: str, **extra: Any) -> dict[str, Any]:
    system, _, code = CODE.partition("|")
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": subject},
        **extra,
    }


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class World:
    """Two patients' records, written with a system token."""

    mine: str
    other: str
    linked: str  # a Patient whose link names mine
    my_obs: str
    other_obs: str  # other's, performed by the practitioner, with identifier other_ident
    other_ident: str
    performed_obs: str  # subject a Group, performer mine: in my compartment
    shared_obs: str  # other's, but mine is a performer: in both compartments
    practitioner: str
    task: str


@pytest.fixture
def world(client: FlaskClient, token: Token) -> World:
    admin = token("system/*.cruds")
    mine, other, linked, dr = new_id("me"), new_id("other"), new_id("linked"), new_id("dr")

    def put(resource_type: str, resource_id: str, body: dict[str, Any]) -> str:
        body = {**body, "resourceType": resource_type, "id": resource_id}
        response = send(client, "PUT", f"/fhir/{resource_type}/{resource_id}", body, admin)
        assert response.status_code == 201, response.data
        return resource_id

    put("Patient", mine, {})
    put("Patient", other, {})
    put(
        "Patient",
        linked,
        {"link": [{"other": {"reference": f"Patient/{mine}"}, "type": "seealso"}]},
    )
    put("Practitioner", dr, {"name": [{"family": "Careful"}]})
    ident = new_id("ident")
    identifier = [{"system": "urn:test", "value": ident}]
    performer = [{"reference": f"Practitioner/{dr}"}]
    world = World(
        mine=mine,
        other=other,
        linked=linked,
        my_obs=put("Observation", new_id("o"), observation(f"Patient/{mine}", performer=performer)),
        other_obs=put(
            "Observation",
            new_id("o"),
            observation(f"Patient/{other}", identifier=identifier, performer=performer),
        ),
        other_ident=ident,
        performed_obs=put(
            "Observation",
            new_id("o"),
            observation(f"Group/{new_id('g')}", performer=[{"reference": f"Patient/{mine}"}]),
        ),
        shared_obs=put(
            "Observation",
            new_id("o"),
            observation(f"Patient/{other}", performer=[{"reference": f"Patient/{mine}"}]),
        ),
        practitioner=dr,
        task=put(
            "Task",
            new_id("t"),
            {"status": "requested", "intent": "order", "for": {"reference": f"Patient/{mine}"}},
        ),
    )
    return world


def assert_outcome(response: TestResponse, status: int, code: str) -> str:
    assert response.status_code == status, response.data
    assert response.json is not None and response.json["resourceType"] == "OperationOutcome"
    assert response.json["issue"][0]["code"] == code
    return str(response.json["issue"][0].get("diagnostics", ""))


def ids(response: TestResponse, mode: str = "match") -> set[str]:
    assert response.status_code == 200, response.data
    assert response.json is not None
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json.get("entry", [])
        if e["search"]["mode"] == mode
    }


def observations(*ids_: str) -> set[str]:
    return {f"Observation/{i}" for i in ids_}


def test_reads_its_own_records_and_not_others(
    client: FlaskClient, token: Token, world: World
) -> None:
    reader = auth(token("patient/*.rs", patient=world.mine))
    for path in (
        f"/fhir/Observation/{world.my_obs}",
        f"/fhir/Observation/{world.my_obs}/_history/1",
        f"/fhir/Observation/{world.my_obs}/_history",
        f"/fhir/Observation/{world.performed_obs}",
        f"/fhir/Observation/{world.shared_obs}",
        f"/fhir/Patient/{world.mine}",
        f"/fhir/Patient/{world.linked}",
        f"/fhir/Practitioner/{world.practitioner}",
    ):
        assert client.get(path, headers=reader).status_code == 200, path
    # Another patient's records answer exactly like records that do not exist.
    missing = new_id("o")
    unknown = assert_outcome(
        client.get(f"/fhir/Observation/{missing}", headers=reader), 404, "not-found"
    )
    hidden = assert_outcome(
        client.get(f"/fhir/Observation/{world.other_obs}", headers=reader), 404, "not-found"
    )
    assert hidden.replace(world.other_obs, missing) == unknown
    for path in (
        f"/fhir/Observation/{world.other_obs}/_history/1",
        f"/fhir/Observation/{world.other_obs}/_history",
        f"/fhir/Patient/{world.other}",
    ):
        assert_outcome(client.get(path, headers=reader), 404, "not-found")
    assert (
        client.get(
            f"/fhir/Observation/{world.other_obs}", headers=auth(token("system/*.rs"))
        ).status_code
        == 200
    )
    # Types outside the compartment that may name patients are refused outright.
    assert_outcome(client.get(f"/fhir/Task/{world.task}", headers=reader), 403, "forbidden")
    assert_outcome(client.get(f"/fhir/Task?patient={world.mine}", headers=reader), 403, "forbidden")
    # Without the launch context, patient/ scopes grant nothing.
    no_claim = auth(token("patient/*.rs"))
    assert_outcome(client.get(f"/fhir/Patient/{world.mine}", headers=no_claim), 403, "forbidden")


def test_search_without_patient_parameter_returns_only_the_compartment(
    client: FlaskClient, token: Token, world: World
) -> None:
    reader = auth(token("patient/Observation.rs patient/Patient.rs", patient=world.mine))
    mine = observations(world.my_obs, world.performed_obs, world.shared_obs)
    everything = client.get("/fhir/Observation?_total=accurate&_count=100", headers=reader)
    assert ids(everything) == mine
    assert everything.json is not None and everything.json["total"] == 3
    assert ids(client.get(f"/fhir/Observation?code={CODE}&_count=100", headers=reader)) == mine
    form = client.post(
        "/fhir/Observation/_search",
        data={"_count": "100"},
        content_type="application/x-www-form-urlencoded",
        headers=reader,
    )
    assert ids(form) == mine
    # Other's records show only where they are in this compartment too (performer).
    by_other = client.get(f"/fhir/Observation?patient={world.other}", headers=reader)
    assert ids(by_other) == observations(world.shared_obs)
    assert ids(client.get(f"/fhir/Observation?subject=Patient/{world.mine}", headers=reader)) == (
        observations(world.my_obs)
    )
    counted = client.get("/fhir/Observation?_summary=count", headers=reader)
    assert counted.json is not None and counted.json["total"] == 3
    patients = client.get("/fhir/Patient?_count=100", headers=reader)
    assert ids(patients) == {f"Patient/{world.mine}", f"Patient/{world.linked}"}
    other = auth(token("patient/*.rs", patient=world.other))
    assert ids(client.get("/fhir/Observation?_count=100", headers=other)) == observations(
        world.other_obs, world.shared_obs
    )
    shared = client.get(f"/fhir/Practitioner?_id={world.practitioner}", headers=reader)
    assert_outcome(shared, 403, "forbidden")  # patient/Observation.rs patient/Patient.rs only
    everyone = auth(token("patient/*.rs", patient=world.mine))
    found = client.get(f"/fhir/Practitioner?_id={world.practitioner}", headers=everyone)
    assert ids(found) == {f"Practitioner/{world.practitioner}"}


def test_includes_cannot_leak(client: FlaskClient, token: Token, world: World) -> None:
    reader = auth(token("patient/*.rs", patient=world.mine))
    subjects = client.get(
        "/fhir/Observation?_include=Observation:subject:Patient&_count=100", headers=reader
    )
    assert ids(subjects) == observations(world.my_obs, world.performed_obs, world.shared_obs)
    assert ids(subjects, "include") == {f"Patient/{world.mine}"}  # not shared_obs's subject
    reverse = client.get(
        f"/fhir/Practitioner?_id={world.practitioner}&_revinclude=Observation:performer",
        headers=reader,
    )
    assert ids(reverse, "include") == observations(world.my_obs)  # not other_obs
    patients = client.get(
        f"/fhir/Patient?_id={world.mine},{world.other}&_revinclude=Observation:performer",
        headers=reader,
    )
    assert ids(patients) == {f"Patient/{world.mine}"}
    assert ids(patients, "include") == observations(world.performed_obs, world.shared_obs)
    performers = client.get(
        f"/fhir/Observation?_id={world.my_obs}&_include=Observation:performer:Practitioner",
        headers=reader,
    )
    assert ids(performers, "include") == {f"Practitioner/{world.practitioner}"}
    for refused in (
        "/fhir/Observation?_include=Observation:subject",  # untyped: any type
        "/fhir/Observation?_include=Observation:device:Device",
        f"/fhir/Patient?_id={world.mine}&_revinclude=Task:patient",
    ):
        assert_outcome(client.get(refused, headers=reader), 403, "forbidden")


def test_writes_stay_in_the_compartment(client: FlaskClient, token: Token, world: World) -> None:
    writer = token("patient/Observation.cruds patient/Patient.cruds", patient=world.mine)
    system = auth(token("system/*.rs"))
    mine, other = f"Patient/{world.mine}", f"Patient/{world.other}"

    def other_count() -> int:
        found = client.get(
            f"/fhir/Observation?patient={world.other}&_summary=count", headers=system
        )
        assert found.json is not None
        return int(found.json["total"])

    before = other_count()
    outside = send(client, "POST", "/fhir/Observation", observation(other), writer)
    assert "not in the patient compartment" in assert_outcome(outside, 403, "forbidden")
    assert "insufficient_scope" in outside.headers["WWW-Authenticate"]
    created = send(client, "POST", "/fhir/Observation", observation(mine), writer)
    assert created.status_code == 201, created.data
    assert created.json is not None
    own = created.json["id"]
    stolen = observation(mine, id=world.other_obs)
    assert_outcome(
        send(client, "PUT", f"/fhir/Observation/{world.other_obs}", stolen, writer),
        403,
        "forbidden",
    )
    moved = observation(other, id=own)
    assert_outcome(send(client, "PUT", f"/fhir/Observation/{own}", moved, writer), 403, "forbidden")
    amended = send(
        client,
        "PUT",
        f"/fhir/Observation/{own}",
        observation(mine, id=own, status="amended"),
        writer,
    )
    assert amended.status_code == 200, amended.data
    deleting = client.delete(f"/fhir/Observation/{world.other_obs}", headers=auth(writer))
    assert_outcome(deleting, 404, "not-found")
    # Conditional writes match only inside the compartment: other's record is never touched.
    criteria = f"identifier=urn:test|{world.other_ident}"
    conditional = send(client, "PUT", f"/fhir/Observation?{criteria}", observation(mine), writer)
    assert conditional.status_code == 201, conditional.data  # no match here: a new record
    headers = {"If-None-Exist": criteria}
    again = send(client, "POST", "/fhir/Observation", observation(mine), writer, **headers)
    assert again.status_code == 201, again.data  # not other's record, found by its identifier
    conditional_delete = client.delete(f"/fhir/Observation?{criteria}", headers=auth(writer))
    assert conditional_delete.status_code == 204  # nothing of the patient's matched
    after = client.get(f"/fhir/Observation/{world.other_obs}", headers=system)
    assert after.json is not None and after.json["meta"]["versionId"] == "1"
    assert other_count() == before
    assert client.delete(f"/fhir/Observation/{own}", headers=auth(writer)).status_code == 204
    # The patient's own deleted record is gone (410), not unknown; deleting it again is a no-op.
    assert_outcome(client.get(f"/fhir/Observation/{own}", headers=auth(writer)), 410, "deleted")
    assert client.delete(f"/fhir/Observation/{own}", headers=auth(writer)).status_code == 204
    # The Patient itself is writable; other Patients, linked or not, are not.
    me = send(
        client,
        "PUT",
        f"/fhir/Patient/{world.mine}",
        {"resourceType": "Patient", "id": world.mine, "gender": "other"},
        writer,
    )
    assert me.status_code == 200, me.data
    linked = {"resourceType": "Patient", "id": world.linked}
    assert_outcome(
        send(client, "PUT", f"/fhir/Patient/{world.linked}", linked, writer), 403, "forbidden"
    )
    assert_outcome(
        send(client, "POST", "/fhir/Patient", {"resourceType": "Patient"}, writer), 403, "forbidden"
    )


def test_write_scopes_v1_and_read_only_tokens(
    client: FlaskClient, token: Token, world: World
) -> None:
    mine = f"Patient/{world.mine}"
    v1 = token("patient/*.read patient/*.write", patient=world.mine)
    assert send(client, "POST", "/fhir/Observation", observation(mine), v1).status_code == 201
    practitioner = {"resourceType": "Practitioner"}
    assert_outcome(send(client, "POST", "/fhir/Practitioner", practitioner, v1), 403, "forbidden")
    read_only = token("patient/*.rs", patient=world.mine)
    assert_outcome(
        send(client, "POST", "/fhir/Observation", observation(mine), read_only), 403, "forbidden"
    )


def test_bundles_are_confined_entry_by_entry(
    client: FlaskClient, token: Token, world: World
) -> None:
    writer = token("patient/Observation.crus", patient=world.mine)
    mine, other = f"Patient/{world.mine}", f"Patient/{world.other}"

    def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}

    def post(resource: dict[str, Any]) -> dict[str, Any]:
        return {"resource": resource, "request": {"method": "POST", "url": "Observation"}}

    def count_mine() -> int:
        found = client.get(
            f"/fhir/Observation?patient={world.mine}&_summary=count",
            headers=auth(token("system/*.rs")),
        )
        assert found.json is not None
        return int(found.json["total"])

    before = count_mine()
    entries = (post(observation(mine)), post(observation(other)))
    refused = send(client, "POST", "/fhir", bundle("transaction", *entries), writer)
    assert "Bundle entry 1" in assert_outcome(refused, 403, "forbidden")
    assert count_mine() == before  # the whole transaction rolled back
    batch = send(
        client,
        "POST",
        "/fhir",
        bundle(
            "batch",
            post(observation(mine)),
            post(observation(other)),
            {"request": {"method": "GET", "url": f"Observation/{world.other_obs}"}},
            {"request": {"method": "GET", "url": "Observation?_count=100"}},
        ),
        writer,
    )
    assert batch.status_code == 200, batch.data
    assert batch.json is not None
    statuses = [e["response"]["status"][:3] for e in batch.json["entry"]]
    assert statuses == ["201", "403", "404", "200"]
    searched = [e["resource"] for e in batch.json["entry"][3]["resource"]["entry"]]
    found = {resource["id"] for resource in searched}
    assert found >= {world.my_obs, world.performed_obs, world.shared_obs}
    assert world.other_obs not in found
    for resource in searched:  # each one names the patient as subject or performer
        links = [resource["subject"], *resource.get("performer", [])]
        assert {"reference": mine} in links, resource
    assert count_mine() == before + 1


def test_extended_operations_need_system_or_user_scopes(
    client: FlaskClient, token: Token, world: World
) -> None:
    reader = auth(token("patient/*.rs", patient=world.mine))
    response = client.post(f"/fhir/ImagingStudy/{new_id('s')}/$analyze", headers=reader)
    assert "operations" in assert_outcome(response, 403, "forbidden")


def test_fhir_user_is_the_audited_agent(
    app: Flask, client: FlaskClient, token: Token, world: World
) -> None:
    user = f"Practitioner/{new_id('user')}"
    assert (
        client.get(
            f"/fhir/Patient/{world.mine}", headers=auth(token("user/*.rs", fhirUser=user))
        ).status_code
        == 200
    )
    ignored = new_id("user")
    junk = token("user/*.rs", fhirUser=f"javascript:{ignored}")
    assert client.get(f"/fhir/Patient/{world.mine}", headers=auth(junk)).status_code == 200
    app.extensions["fhir_ai.writer"].flush()
    events = client.get(f"/fhir/AuditEvent?agent={user}", headers=auth(token("system/*.rs")))
    assert events.status_code == 200 and events.json is not None
    (event,) = [e["resource"] for e in events.json["entry"]]
    assert event["agent"][0]["who"] == {
        "reference": user,
        "display": "https://auth.example client-1",
    }
    assert event["entity"][0]["what"] == {"reference": f"Patient/{world.mine}"}
    validate_resource(event)  # a valid R4 AuditEvent
    recent = client.get(
        f"/fhir/AuditEvent?entity=Patient/{world.mine}&_count=100",
        headers=auth(token("system/*.rs")),
    )
    assert recent.json is not None
    whos = [e["resource"]["agent"][0]["who"] for e in recent.json["entry"]]
    assert {"display": "https://auth.example client-1"} in whos  # the junk fhirUser left out
    assert all(ignored not in json.dumps(who) for who in whos)
