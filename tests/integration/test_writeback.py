"""Write-back of a finished report to another FHIR server with SMART Backend Services.

The EHR is a second fhir-ai app on a local port (recording the Authorization header it
gets) and a local token endpoint that checks our signed client assertion.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from werkzeug.serving import make_server

from fhir_ai.security.backend_services import BackendServicesClient
from fhir_ai.subscriptions.writeback import report_bundle, send_bundle
from tests.conftest import build_app, make_settings
from tests.fhir_helpers import ai_report_bundle, post

pytestmark = pytest.mark.integration
CLIENT_ID = "fhir-ai-test"


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def token_endpoint(key: ec.EllipticCurvePrivateKey) -> Iterator[str]:
    """Grants ``token-<n>`` to a client assertion signed by ``key``; 401 otherwise."""
    public = key.public_key()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            try:
                jwt.decode(form["client_assertion"][0], public, ["ES384"], audience=url)
            except jwt.PyJWTError:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps(
                {"access_token": "token-1", "token_type": "bearer", "expires_in": 300}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[tuple[Flask, str, list[str]]]:
    """A second fhir-ai app as the EHR: (app, FHIR base URL, Authorization headers seen)."""
    app = build_app(make_settings(tmp_path / "ehr", broker_url=None))
    seen: list[str] = []
    wsgi: Callable[..., Any] = app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(str(environ.get("HTTP_AUTHORIZATION")))
        return wsgi(environ, start_response)

    server = make_server("127.0.0.1", 0, recording, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{server.server_port}/fhir", seen
    server.shutdown()


def test_a_report_is_written_back_once_with_a_backend_services_token(
    tmp_path: Path,
    key: ec.EllipticCurvePrivateKey,
    token_endpoint: str,
    ehr: tuple[Flask, str, list[str]],
) -> None:
    ours = build_app(make_settings(tmp_path / "ours"))
    bundle = ai_report_bundle("p1", 0.9, datetime.now(UTC))
    bundle["entry"][1]["resource"]["identifier"] = [{"system": "urn:test", "value": "r-1"}]
    written = post(ours.test_client(), "/fhir", bundle).json
    report = next(
        e["response"]["location"]
        for e in written["entry"]
        if "DiagnosticReport" in e["response"]["location"]
    )
    reference = "/".join(report.split("/")[:2])
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    client = BackendServicesClient(token_endpoint, CLIENT_ID, pem, "k1", "ES384", "system/*.c")
    ehr_app, base, seen = ehr
    with ours.extensions["fhir_ai.store"].session(read_only=True) as session:
        outgoing = report_bundle(session, reference)
    for _ in range(2):  # a retried write-back creates nothing twice
        location = send_bundle(outgoing, base, client, requests.Session(), 10)
        assert location.startswith("DiagnosticReport/")
    assert seen == ["Bearer token-1", "Bearer token-1"]
    reports = ehr_app.test_client().get("/fhir/DiagnosticReport").json["entry"]
    assert len(reports) == 1
    copied = reports[0]["resource"]
    assert copied["identifier"] == [{"system": "urn:test", "value": "r-1"}]
    assert copied["meta"]["security"][0]["code"] == "AIAST"
    observations = ehr_app.test_client().get("/fhir/Observation").json["entry"]
    assert len(observations) == 1
    assert copied["result"][0]["reference"] == f"Observation/{observations[0]['resource']['id']}"
    assert observations[0]["resource"]["code"]["text"] == "Pneumonia"
