"""The CDS Hooks endpoints end to end: JWT, discovery, calls with prefetch, feedback, CORS."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from jwt.algorithms import ECAlgorithm

from fhir_ai.app import create_app
from fhir_ai.cds.models import Card, CdsResponse, Indicator, Source
from fhir_ai.cds.service import HookCall
from fhir_ai.store.cds import CdsStore
from fhir_ai.store.database import upgrade_schema
from tests.conftest import make_settings

pytestmark = pytest.mark.integration
ISS = "https://ehr.example"
ROOT = "https://cds.example.org"
SHARED = Path("../shared/data/cds/spec-2.0.1")


@dataclass
class EchoPatientService:
    """A test service: one card naming the patient's family name from prefetch."""

    id: str = "patient-greeter"
    hooks: tuple[str, ...] = ("patient-view", "encounter-start")
    title: str = "Patient greeter"
    description: str = "Greets the patient in context (test service)."
    prefetch: Mapping[str, str] = field(
        default_factory=lambda: {"patient": "Patient/{{context.patientId}}"}
    )
    required_prefetch: frozenset[str] = frozenset({"patient"})
    usage_requirements: str | None = None
    version: str = "greeter-1.0"
    calls: list[HookCall] = field(default_factory=list)

    def evaluate(self, call: HookCall) -> CdsResponse:
        self.calls.append(call)
        patient = call.prefetch["patient"]
        if patient is None:
            return CdsResponse.no_guidance()
        family = patient["name"][0]["family"]
        source = Source(label="fhir-ai tests")
        card = Card(summary=f"Hello {family}", indicator=Indicator.INFO, source=source)
        return CdsResponse(cards=[card])


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def service() -> EchoPatientService:
    return EchoPatientService()


def _app(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, service: EchoPatientService, **settings: Any
) -> Flask:
    tmp_path.mkdir(exist_ok=True)
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    (tmp_path / "ehr-jwks.json").write_text(json.dumps({"keys": [jwk]}))
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": ISS, "jwks_file": "ehr-jwks.json"}]}))
    app = create_app(
        make_settings(
            tmp_path,
            cds_issuers=issuers,
            public_base_url=ROOT,
            cors_origins=("https://ehr.example",),
            **settings,
        ),
        cds_services=[service],
    )
    upgrade_schema(app.extensions["fhir_ai.engine"])
    return app


@pytest.fixture
def app(tmp_path: Path, key: ec.EllipticCurvePrivateKey, service: EchoPatientService) -> Flask:
    return _app(tmp_path, key, service)


@pytest.fixture
def token(key: ec.EllipticCurvePrivateKey) -> Callable[..., str]:
    def make(path: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISS,
            "aud": ROOT + path,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        signed = jwt.encode(payload, key, algorithm="ES384", headers={"kid": "k1", "typ": "JWT"})
        return f"Bearer {signed}"

    return make


def _request(patient_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        **extra,
    }


def test_discovery_needs_a_valid_jwt(app: Flask, token: Callable[..., str]) -> None:
    client = app.test_client()
    assert client.get("/cds-services").status_code == 401
    assert client.get("/cds-services").data == b""
    wrong_aud = token("/cds-services/other")
    assert client.get("/cds-services", headers={"Authorization": wrong_aud}).status_code == 401
    good = token("/cds-services")
    response = client.get("/cds-services", headers={"Authorization": good})
    assert response.status_code == 200
    services = response.json["services"]
    assert [(s["id"], s["hook"]) for s in services] == [
        ("patient-greeter", "patient-view"),
        ("patient-greeter", "encounter-start"),
    ]
    assert services[0]["prefetch"] == {"patient": "Patient/{{context.patientId}}"}
    replayed = client.get("/cds-services", headers={"Authorization": good})
    assert replayed.status_code == 401


def test_call_with_prefetch_sent(
    app: Flask, token: Callable[..., str], service: EchoPatientService
) -> None:
    client = app.test_client()
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Chalmers"}]}
    body = _request("p1", prefetch={"patient": patient})
    auth = token("/cds-services/patient-greeter")
    response = client.post(
        "/cds-services/patient-greeter", json=body, headers={"Authorization": auth}
    )
    assert response.status_code == 200, response.json
    card = response.json["cards"][0]
    assert card["summary"] == "Hello Chalmers" and card["indicator"] == "info"
    assert uuid.UUID(card["uuid"])
    assert set(card) == {"uuid", "summary", "indicator", "source"}
    assert service.calls[0].context.patientId == "p1"


def test_null_prefetch_is_known_empty(app: Flask, token: Callable[..., str]) -> None:
    client = app.test_client()
    auth = token("/cds-services/patient-greeter")
    body = _request("p1", prefetch={"patient": None})
    response = client.post(
        "/cds-services/patient-greeter", json=body, headers={"Authorization": auth}
    )
    assert response.status_code == 200 and response.json == {"cards": []}


def test_missing_prefetch_is_fetched_from_the_fhir_server(
    app: Flask,
    token: Callable[..., str],
    server_url: str,
    tmp_path: Path,
    key: ec.EllipticCurvePrivateKey,
    service: EchoPatientService,
) -> None:
    import requests

    created = requests.post(
        f"{server_url}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Fetched"}]},
        timeout=5,
    )
    body = _request(
        created.json()["id"],
        fhirServer=server_url,
        fhirAuthorization={
            "access_token": "secret-at",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read",
            "subject": "cds-service",
        },
    )
    path = "/cds-services/patient-greeter"
    refused = app.test_client().post(path, json=body, headers={"Authorization": token(path)})
    assert refused.status_code == 400  # the token would travel over plain http
    assert refused.json["issue"][0]["expression"] == ["fhirServer"]
    assert service.calls == []
    local_dev = _app(tmp_path / "dev", key, service, cds_allow_http_fhir_server=True)
    response = local_dev.test_client().post(path, json=body, headers={"Authorization": token(path)})
    assert response.status_code == 200, response.json
    assert response.json["cards"][0]["summary"] == "Hello Fetched"


def test_unobtainable_required_prefetch_is_412(app: Flask, token: Callable[..., str]) -> None:
    auth = token("/cds-services/patient-greeter")
    response = app.test_client().post(
        "/cds-services/patient-greeter", json=_request("p1"), headers={"Authorization": auth}
    )
    assert response.status_code == 412
    assert response.json["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        ({"hook": "patient-view"}, 400, "hookInstance"),
        (_request("p1") | {"hook": "order-sign"}, 400, "hook"),
        (_request("p1") | {"context": {"userId": "Practitioner/x"}}, 400, "context.patientId"),
        (_request("p1") | {"hookInstance": "not-a-uuid"}, 400, "hookInstance"),
        (
            _request("p1")
            | {
                "fhirAuthorization": {
                    "access_token": "x",
                    "token_type": "Bearer",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "c",
                }
            },
            400,
            None,
        ),
    ],
)
def test_malformed_calls_are_400_outcomes(
    app: Flask, token: Callable[..., str], body: dict[str, Any], status: int, expression: str | None
) -> None:
    auth = token("/cds-services/patient-greeter")
    response = app.test_client().post(
        "/cds-services/patient-greeter", json=body, headers={"Authorization": auth}
    )
    assert response.status_code == status
    issue = response.json["issue"][0]
    if expression:
        assert issue["expression"] == [expression]
    assert "x" not in issue.get("diagnostics", "").split()


def test_unknown_service_and_bad_json(app: Flask, token: Callable[..., str]) -> None:
    client = app.test_client()
    unknown = client.post(
        "/cds-services/nope",
        json=_request("p1"),
        headers={"Authorization": token("/cds-services/nope")},
    )
    assert unknown.status_code == 404 and unknown.json["resourceType"] == "OperationOutcome"
    bad = client.post(
        "/cds-services/patient-greeter",
        data="{",
        content_type="application/json",
        headers={"Authorization": token("/cds-services/patient-greeter")},
    )
    assert bad.status_code == 400


def test_feedback_is_stored_once_per_event(app: Flask, token: Callable[..., str]) -> None:
    client = app.test_client()
    call = client.post(
        "/cds-services/patient-greeter",
        json=_request(
            "p1", prefetch={"patient": {"resourceType": "Patient", "name": [{"family": "F"}]}}
        ),
        headers={"Authorization": token("/cds-services/patient-greeter")},
    )
    card_uuid = call.json["cards"][0]["uuid"]
    app.extensions["fhir_ai.writer"].flush()  # issued cards are written in the background
    assert CdsStore(app.extensions["fhir_ai.engine"]).card_counts() == {
        ("patient-greeter", "info"): 1
    }
    feedback = {
        "feedback": [
            {
                "card": card_uuid,
                "outcome": "overridden",
                "overrideReason": {"userComment": "not now"},
                "outcomeTimestamp": "2026-11-23T10:00:00Z",
            }
        ]
    }
    path = "/cds-services/patient-greeter/feedback"
    for _ in range(2):
        response = client.post(path, json=feedback, headers={"Authorization": token(path)})
        assert response.status_code == 200
    store = CdsStore(app.extensions["fhir_ai.engine"])
    assert store.outcome_counts("patient-greeter") == {"overridden": 1}
    accepted_without_suggestions = {
        "feedback": [
            {"card": card_uuid, "outcome": "accepted", "outcomeTimestamp": "2026-11-23T10:00:00Z"}
        ]
    }
    refused = client.post(
        path, json=accepted_without_suggestions, headers={"Authorization": token(path)}
    )
    assert refused.status_code == 400


def test_spec_feedback_examples_are_accepted(app: Flask, token: Callable[..., str]) -> None:
    if not SHARED.is_dir():
        pytest.skip("shared CDS Hooks examples not found")
    path = "/cds-services/patient-greeter/feedback"
    for name in ("feedback-accepted.json", "feedback-overridden-with-reason.json"):
        body = json.loads((SHARED / name).read_text())
        response = app.test_client().post(path, json=body, headers={"Authorization": token(path)})
        assert response.status_code == 200, (name, response.json)


def test_cors_preflight_needs_no_jwt(app: Flask) -> None:
    client = app.test_client()
    preflight = client.options(
        "/cds-services/patient-greeter",
        headers={"Origin": "https://ehr.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://ehr.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = client.options("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_auth_off_must_be_explicit(tmp_path: Path, service: EchoPatientService) -> None:
    app: Flask = create_app(make_settings(tmp_path), cds_services=[service])
    assert app.test_client().get("/cds-services").status_code == 401
    app_off = create_app(make_settings(tmp_path, cds_auth="off"), cds_services=[service])
    client: FlaskClient = app_off.test_client()
    assert client.get("/cds-services").status_code == 200
