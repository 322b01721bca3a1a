"""The report view a CDS card links to: opened without a SMART token through its signed
link, refused with any other link, audited, and showing the heatmap inline."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import build_app, make_settings
from tests.fhir_helpers import ai_report_bundle, post

pytestmark = pytest.mark.integration
ROOT = "https://ai.example"


@pytest.fixture
def apps(tmp_path: Path) -> tuple[Flask, Flask]:
    """An open app that seeds, and the production-like one on the same data (FHIR API needs
    a token, and no issuer is trusted, so /fhir answers 401)."""
    common = {"cds_auth": "off", "public_base_url": ROOT}
    seeding = build_app(make_settings(tmp_path, **common))
    secured = build_app(make_settings(tmp_path, fhir_auth="required", **common))
    return seeding, secured


def _seed_report(client: FlaskClient, probability: float) -> tuple[str, str]:
    patient = post(client, "/fhir/Patient", {"resourceType": "Patient"}).json["id"]
    when = datetime.now(UTC) - timedelta(days=1)
    response = post(client, "/fhir", ai_report_bundle(patient, probability, when))
    assert response.status_code == 200, response.json
    report = response.json["entry"][1]["response"]["location"].split("/")[1]
    return str(patient), str(report)


def _card_link(client: FlaskClient, patient: str) -> str:
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient},
    }
    response = client.post("/cds-services/imaging-ai-findings", json=body)
    assert response.status_code == 200, response.json
    (card,) = response.json["cards"]
    url = str(card["links"][0]["url"])
    assert url.startswith(f"{ROOT}/reports/")
    split = urlsplit(url)
    return f"{split.path}?{split.query}"


def test_the_card_link_opens_the_report_without_a_token(apps: tuple[Flask, Flask]) -> None:
    seeding, secured = apps
    patient, report = _seed_report(seeding.test_client(), 0.93)
    client = secured.test_client()
    assert client.get(f"/fhir/DiagnosticReport/{report}").status_code == 401
    response = client.get(_card_link(client, patient))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Pneumonia" in page and "93%" in page and "positive" in page
    assert "Preliminary result asserted by an AI model" in page
    assert f"DiagnosticReport/{report}" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_other_links_are_refused_without_detail(apps: tuple[Flask, Flask]) -> None:
    seeding, secured = apps
    patient, report = _seed_report(seeding.test_client(), 0.93)
    _, other = _seed_report(seeding.test_client(), 0.1)
    client = secured.test_client()
    link = _card_link(client, patient)
    for bad in (
        link.replace(report, other),  # the signature of another report
        link[:-2] + ("AA" if not link.endswith("AA") else "BB"),
        f"/reports/{report}",
        link.replace("exp=", "exp=9"),
    ):
        response = client.get(bad)
        assert response.status_code == 403, bad
        assert "not valid or has expired" in response.get_data(as_text=True)
        assert "Pneumonia" not in response.get_data(as_text=True)


def test_a_deleted_or_non_ai_report_is_not_shown(apps: tuple[Flask, Flask]) -> None:
    seeding, secured = apps
    patient, report = _seed_report(seeding.test_client(), 0.93)
    client = secured.test_client()
    link = _card_link(client, patient)
    assert seeding.test_client().delete(f"/fhir/DiagnosticReport/{report}").status_code in (
        200,
        204,
    )
    assert client.get(link).status_code == 404


def test_views_are_audited(apps: tuple[Flask, Flask]) -> None:
    seeding, secured = apps
    patient, report = _seed_report(seeding.test_client(), 0.93)
    client = secured.test_client()
    assert client.get(_card_link(client, patient)).status_code == 200
    secured.extensions["fhir_ai.writer"].flush()
    events = seeding.test_client().get(f"/fhir/AuditEvent?entity=DiagnosticReport/{report}")
    assert events.json["total"] >= 1


def test_the_heatmap_is_shown_inline(apps: tuple[Flask, Flask]) -> None:
    seeding, secured = apps
    open_client = seeding.test_client()
    patient, report_id = _seed_report(open_client, 0.93)
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(buffer, format="PNG")
    png = base64.b64encode(buffer.getvalue()).decode()
    binary = post(
        open_client,
        "/fhir/Binary",
        {"resourceType": "Binary", "contentType": "image/png", "data": png},
    ).json
    report = open_client.get(f"/fhir/DiagnosticReport/{report_id}").json
    report["presentedForm"] = [
        {"contentType": "image/png", "url": f"Binary/{binary['id']}", "title": "Grad-CAM heatmap"}
    ]
    response = open_client.put(f"/fhir/DiagnosticReport/{report_id}", json=report)
    assert response.status_code == 200, response.json
    client = secured.test_client()
    page = client.get(_card_link(client, patient)).get_data(as_text=True)
    assert f'src="data:image/png;base64,{png}"' in page
    assert "Grad-CAM heatmap" in page
