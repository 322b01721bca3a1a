"""SMART on FHIR authorization of ``/fhir``: bearer JWTs, scopes per interaction, discovery."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import build_app, make_settings
from tests.fhir_helpers import assert_outcome
from tests.smart_helpers import (
    AUD,
    ISS,
    ROOT,
    TOKEN_URL,
    Token,
    auth,
    smart_settings,
    token_factory,
)

pytestmark = pytest.mark.integration
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> Flask:
    return build_app(smart_settings(tmp_path_factory.mktemp("smart"), ec_key, rsa_key))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def token(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> Token:
    """``token("system/*.rs", patient=..., alg=..., **claims)``: an Authorization header."""
    return token_factory(ec_key, rsa_key)


def patient(patient_id: str | None = None, family: str = "Chalmers") -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}]}
    if patient_id:
        body["id"] = patient_id
    return body


def observation(patient_id: str, code: str = "1234-5") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def post(client: FlaskClient, path: str, body: Any, header: str) -> TestResponse:
    return client.post(path, data=json.dumps(body), content_type=FHIR_JSON, headers=auth(header))


def put(client: FlaskClient, path: str, body: Any, header: str) -> TestResponse:
    return client.put(path, data=json.dumps(body), content_type=FHIR_JSON, headers=auth(header))


def count(client: FlaskClient, token: Token, resource_type: str, params: str) -> int:
    response = client.get(
        f"/fhir/{resource_type}?{params}&_total=accurate", headers=auth(token("system/*.rs"))
    )
    assert response.status_code == 200, response.data
    assert response.json is not None
    return int(response.json["total"])


# -- open endpoints -------------------------------------------------------------------------
def test_metadata_is_open_and_advertises_smart(client: FlaskClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.json is not None
    security = response.json["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = security["extension"][0]
    assert oauth["url"].endswith("/oauth-uris")
    assert oauth["extension"] == [{"url": "token", "valueUri": TOKEN_URL}]


@pytest.mark.parametrize("path", ["/.well-known/smart-configuration",
                                  "/fhir/.well-known/smart-configuration"])  # fmt: skip
def test_smart_configuration(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.json
    assert document is not None
    assert document["token_endpoint"] == TOKEN_URL
    assert "authorization_endpoint" not in document
    assert document["grant_types_supported"] == ["client_credentials"]
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {"system/*.rs", "system/*.cruds", "patient/*.rs", "patient/*.cruds"} <= set(
        document["scopes_supported"]
    )
    assert {
        "client-confidential-asymmetric",
        "permission-v1",
        "permission-v2",
        "permission-patient",
        "permission-user",
    } <= set(document["capabilities"])
    assert not {"context-standalone-patient", "context-ehr-patient"} & set(
        document["capabilities"]
    )  # launch flows belong to the authorization server


def test_options_needs_no_token(client: FlaskClient) -> None:
    assert client.options("/fhir/Patient").status_code == 200


# -- 401 --------------------------------------------------------------------------------------
def test_no_token_is_401_with_outcome_and_challenge(client: FlaskClient) -> None:
    for response in (
        client.get("/fhir/Patient"),
        client.get("/fhir/Patient/p1"),
        post(client, "/fhir/Patient", patient(), ""),
        post(client, "/fhir", {"resourceType": "Bundle", "type": "batch"}, ""),
    ):
        assert_outcome(response, 401, "login")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "invalid_token" not in response.headers["WWW-Authenticate"]


def _none_token() -> str:
    payload = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 300, "scope": "system/*.*"}
    return "Bearer " + jwt.encode(payload, "", algorithm="none", headers={"kid": "ec-1"})


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda t: t("system/*.*", exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda t: t("system/*.*", nbf=int(time.time()) + 3600), id="not-yet-valid"),
        pytest.param(lambda t: t("system/*.*", aud="https://other.example/fhir"), id="wrong-aud"),
        pytest.param(lambda t: t("system/*.*", aud=None), id="no-aud"),
        pytest.param(lambda t: t("system/*.*", exp=None), id="no-exp"),
        pytest.param(lambda t: t("system/*.*", iss="https://evil.example"), id="unknown-iss"),
        pytest.param(lambda t: t(None, scope=42), id="bad-scope-claim"),
        pytest.param(lambda t: _none_token(), id="alg-none"),
        pytest.param(
            lambda t: (
                "Bearer "
                + jwt.encode(
                    {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 60, "scope": "system/*.*"},
                    "a-shared-secret-that-is-long-enough-for-hs256",
                    algorithm="HS256",
                    headers={"kid": "ec-1"},
                )
            ),
            id="alg-hs256",
        ),
        pytest.param(lambda t: t("system/*.*")[:-8] + "AAAAAAAA", id="bad-signature"),
        pytest.param(lambda t: "Bearer not.a.jwt", id="garbage"),
        pytest.param(lambda t: "Basic dXNlcjpwYXNz", id="basic"),
    ],
)
def test_bad_tokens_are_401(client: FlaskClient, token: Token, make_header: Any) -> None:
    response = client.get("/fhir/Patient", headers=auth(make_header(token)))
    assert_outcome(response, 401, "login")
    assert response.json is not None
    assert response.json["issue"][0]["diagnostics"] == "authentication failed"
    assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_token_signed_by_unknown_key_is_401(client: FlaskClient, token: Token) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    payload = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 60, "scope": "system/*.*"}
    forged = jwt.encode(payload, other, algorithm="ES384", headers={"kid": "ec-1"})
    assert_outcome(client.get("/fhir/Patient", headers=auth(f"Bearer {forged}")), 401, "login")


@pytest.mark.parametrize("alg", ["ES384", "RS384", "RS256"])
def test_allowed_algorithms(client: FlaskClient, token: Token, alg: str) -> None:
    response = client.get("/fhir/Patient", headers=auth(token("system/Patient.s", alg=alg)))
    assert response.status_code == 200, response.data


def test_tokens_are_never_logged(
    client: FlaskClient, token: Token, caplog: pytest.LogCaptureFixture
) -> None:
    good = token("system/Patient.rs")
    expired = token("system/*.*", exp=int(time.time()) - 3600)
    fhir_ai_logger = logging.getLogger("fhir_ai")  # does not propagate to caplog's root
    level = fhir_ai_logger.level
    fhir_ai_logger.addHandler(caplog.handler)
    fhir_ai_logger.setLevel(logging.DEBUG)
    try:
        client.get("/fhir/Patient", headers=auth(good))
        client.get("/fhir/Patient", headers=auth(expired))
    finally:
        fhir_ai_logger.removeHandler(caplog.handler)
        fhir_ai_logger.setLevel(level)
    assert "SMART access token accepted" in caplog.text
    assert "expired" in caplog.text
    for header in (good, expired):
        signed = header.removeprefix("Bearer ")
        assert signed not in caplog.text
        assert signed.split(".")[2] not in caplog.text
        for record in caplog.records:
            assert signed not in json.dumps(record.__dict__, default=str)


# -- scopes per interaction ----------------------------------------------------------------
def test_right_scopes_allow_every_interaction(client: FlaskClient, token: Token) -> None:
    created = post(client, "/fhir/Patient", patient(), token("system/Patient.c"))
    assert created.status_code == 201, created.data
    assert created.json is not None
    pid = created.json["id"]
    reader = token("system/Patient.r")
    assert client.get(f"/fhir/Patient/{pid}", headers=auth(reader)).status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history/1", headers=auth(reader)).status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history", headers=auth(reader)).status_code == 200
    searcher = token("system/Patient.s")
    assert client.get(f"/fhir/Patient?_id={pid}", headers=auth(searcher)).status_code == 200
    form = client.post(
        "/fhir/Patient/_search",
        data={"_id": pid},
        content_type="application/x-www-form-urlencoded",
        headers=auth(searcher),
    )
    assert form.status_code == 200
    updated = put(client, f"/fhir/Patient/{pid}", patient(pid, "Other"), token("system/Patient.u"))
    assert updated.status_code == 200, updated.data
    deleted = client.delete(f"/fhir/Patient/{pid}", headers=auth(token("system/Patient.d")))
    assert deleted.status_code == 204
    v1 = token("system/Patient.read system/Patient.write")
    again = post(client, "/fhir/Patient", patient(), v1)
    assert again.status_code == 201
    assert client.get("/fhir/Patient", headers=auth(v1)).status_code == 200
    listed = token(["system/Observation.cruds", "system/Patient.cruds"])
    assert post(client, "/fhir/Observation", observation(pid), listed).status_code == 201


def test_read_only_token_cannot_write(client: FlaskClient, token: Token) -> None:
    reader = token("system/*.read")
    assert_outcome(post(client, "/fhir/Patient", patient(), reader), 403, "forbidden")
    assert_outcome(put(client, "/fhir/Patient/ro-1", patient("ro-1"), reader), 403, "forbidden")
    assert_outcome(client.delete("/fhir/Patient/ro-1", headers=auth(reader)), 403, "forbidden")
    response = client.get("/fhir/Patient", headers=auth(reader))
    assert response.status_code == 200
    forbidden = post(client, "/fhir/Patient", patient(), reader)
    assert "insufficient_scope" in forbidden.headers["WWW-Authenticate"]


def test_type_scopes_do_not_cover_other_types(client: FlaskClient, token: Token) -> None:
    reports = token("system/DiagnosticReport.rs")
    assert client.get("/fhir/DiagnosticReport", headers=auth(reports)).status_code == 200
    assert_outcome(client.get("/fhir/Patient", headers=auth(reports)), 403, "forbidden")
    assert_outcome(client.get("/fhir/Patient/p1", headers=auth(reports)), 403, "forbidden")
    nothing = token("openid fhirUser")
    assert_outcome(client.get("/fhir/DiagnosticReport", headers=auth(nothing)), 403, "forbidden")
    no_scope = token(None)
    assert_outcome(client.get("/fhir/DiagnosticReport", headers=auth(no_scope)), 403, "forbidden")


def test_rs_can_search_but_not_create_and_r_cannot_search(
    client: FlaskClient, token: Token
) -> None:
    rs = token("system/DiagnosticReport.rs")
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT"}}
    assert_outcome(post(client, "/fhir/DiagnosticReport", report, rs), 403, "forbidden")
    assert client.get("/fhir/DiagnosticReport?status=final", headers=auth(rs)).status_code == 200
    read_only = token("system/DiagnosticReport.r")
    assert_outcome(client.get("/fhir/DiagnosticReport", headers=auth(read_only)), 403, "forbidden")
    search_only = token("system/DiagnosticReport.s")
    created = post(client, "/fhir/DiagnosticReport", report, token("system/DiagnosticReport.c"))
    assert created.json is not None
    path = f"/fhir/DiagnosticReport/{created.json['id']}"
    assert_outcome(client.get(path, headers=auth(search_only)), 403, "forbidden")
    assert client.get(path, headers=auth(read_only)).status_code == 200


def test_conditional_writes_also_need_search(client: FlaskClient, token: Token) -> None:
    writer = token("system/Patient.cud")
    conditional = put(client, "/fhir/Patient?identifier=urn:x|1", patient(), writer)
    assert_outcome(conditional, 403, "forbidden")
    response = client.post(
        "/fhir/Patient",
        data=json.dumps(patient()),
        content_type=FHIR_JSON,
        headers={**auth(writer), "If-None-Exist": "identifier=urn:x|1"},
    )
    assert_outcome(response, 403, "forbidden")
    deleting = client.delete("/fhir/Patient?identifier=urn:x|1", headers=auth(writer))
    assert_outcome(deleting, 403, "forbidden")
    full = token("system/Patient.cruds")
    assert put(client, "/fhir/Patient?identifier=urn:x|1", patient(), full).status_code == 201


def test_include_needs_read_on_the_included_type(client: FlaskClient, token: Token) -> None:
    path = "/fhir/Observation?_include=Observation:subject:Patient"
    assert_outcome(client.get(path, headers=auth(token("system/Observation.rs"))), 403, "forbidden")
    both = token("system/Observation.rs system/Patient.r")
    assert client.get(path, headers=auth(both)).status_code == 200


def test_restricted_scope_grants_matching_searches(client: FlaskClient, token: Token) -> None:
    labs = token("system/Observation.rs?category=laboratory")
    assert (
        client.get("/fhir/Observation?category=laboratory", headers=auth(labs)).status_code == 200
    )
    assert_outcome(client.get("/fhir/Observation", headers=auth(labs)), 403, "forbidden")
    assert_outcome(client.get("/fhir/Observation/o1", headers=auth(labs)), 403, "forbidden")


# -- Bundles ---------------------------------------------------------------------------------
def _bundle(kind: str, marker: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                "resource": patient(family=marker),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    **observation("x"),
                    "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_bundle_with_one_forbidden_entry_is_refused_whole(
    client: FlaskClient, token: Token, kind: str
) -> None:
    marker = f"Smart{uuid.uuid4().hex[:8]}"
    response = post(client, "/fhir", _bundle(kind, marker), token("system/Patient.cruds"))
    assert_outcome(response, 403, "forbidden")
    assert response.json is not None
    assert "Bundle entry 1" in response.json["issue"][0]["diagnostics"]
    assert count(client, token, "Patient", f"family={marker}") == 0


def test_bundle_with_all_entries_allowed_runs(client: FlaskClient, token: Token) -> None:
    marker = f"Smart{uuid.uuid4().hex[:8]}"
    scopes = token("system/Patient.c system/Observation.c")
    response = post(client, "/fhir", _bundle("transaction", marker), scopes)
    assert response.status_code == 200, response.data
    assert count(client, token, "Patient", f"family={marker}") == 1


def test_bundle_reads_and_conditional_references_are_checked(
    client: FlaskClient, token: Token
) -> None:
    reads = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient?name=x&unknown=1"}}],
    }
    assert_outcome(post(client, "/fhir", reads, token("system/Observation.rs")), 403, "forbidden")
    assert post(client, "/fhir", reads, token("system/Patient.s")).status_code == 200
    conditional = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**observation("x"), "subject": {"reference": "Patient?name=Zed"}},
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    response = post(client, "/fhir", conditional, token("system/Observation.c"))
    assert_outcome(response, 403, "forbidden")


# -- patient/ scopes: see test_fhir_patient_scopes.py ------------------------------------------
# -- switch ----------------------------------------------------------------------------------
def test_auth_off_opens_the_api_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_app(make_settings(tmp_path, fhir_auth="off"))
    assert "FHIR_AI_FHIR_AUTH=off" in capsys.readouterr().err
    client = app.test_client()
    assert client.get("/fhir/Patient").status_code == 200
    metadata = client.get("/fhir/metadata").json
    assert metadata is not None
    assert "security" not in metadata["rest"][0]


def test_required_without_issuers_refuses_everyone(
    tmp_path: Path, token: Token, capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_app(make_settings(tmp_path, fhir_auth="required", public_base_url=ROOT))
    assert "FHIR_AI_FHIR_ISSUERS" in capsys.readouterr().err
    client = app.test_client()
    assert_outcome(client.get("/fhir/Patient", headers=auth(token("system/*.*"))), 401, "login")
    assert client.get("/fhir/metadata").status_code == 200


def test_uncovered_types_are_403_before_the_query_is_parsed(
    client: FlaskClient, token: Token
) -> None:
    reports = token("system/DiagnosticReport.rs")
    assert_outcome(client.get("/fhir/NoSuchType?x=1", headers=auth(reports)), 403, "forbidden")
    assert_outcome(client.get("/fhir/Patient?_count=x", headers=auth(reports)), 403, "forbidden")
    everything = token("system/*.rs")
    assert_outcome(client.get("/fhir/NoSuchType", headers=auth(everything)), 404, "not-found")


def test_dicomweb_needs_a_token_with_imaging_study_scopes(
    client: FlaskClient, token: Token, shared_data: Path
) -> None:
    data = (shared_data / "dicom" / "chest_radiographs" / "RG1_UNCR.dcm").read_bytes()
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--b--\r\n"
    stow = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}
    assert client.post("/dicomweb/studies", data=body, headers=stow).status_code == 401
    assert client.get("/dicomweb/studies").status_code == 401
    read_only = auth(token("system/ImagingStudy.rs"))
    refused = client.post("/dicomweb/studies", data=body, headers={**stow, **read_only})
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["code"] == "forbidden"
    patient_scope = auth(token("patient/ImagingStudy.rs", patient="p1"))
    assert client.get("/dicomweb/studies", headers=patient_scope).status_code == 403
    writer = auth(token("system/ImagingStudy.crs"))
    stored = client.post("/dicomweb/studies", data=body, headers={**stow, **writer})
    assert stored.status_code == 200
    assert client.get("/dicomweb/studies", headers=read_only).status_code == 200
