"""Request logs are JSON lines with a request id, and carry no PHI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import build_app, make_settings


def test_request_log_has_id_route_status_and_no_phi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_app(make_settings(tmp_path, log_level="INFO", log_format="json"))
    client = app.test_client()
    capsys.readouterr()
    response = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Secretname"}]},
        headers={"X-Request-ID": "req-123", "Authorization": "Bearer tok-SECRET"},
    )
    assert response.headers["X-Request-ID"] == "req-123"
    client.get("/fhir/Patient?family=Secretname&birthdate=1970-01-01")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    requests = [line for line in lines if line["msg"] == "request"]
    assert [r["status"] for r in requests] == [201, 200]
    assert requests[0]["request_id"] == "req-123"
    assert requests[1]["route"] == "/fhir/<resource_type>"
    text = json.dumps(lines)
    for secret in ("Secretname", "tok-SECRET", "1970-01-01"):
        assert secret not in text


def test_unsafe_request_ids_are_replaced(tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path))
    response = app.test_client().get("/healthz", headers={"X-Request-ID": "x" * 65})
    assert len(response.headers["X-Request-ID"]) == 32
