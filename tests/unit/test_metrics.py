"""``/metrics``: request latency by route template (no PHI) and CDS feedback from the database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from fhir_ai.app import create_app
from fhir_ai.metrics import REQUEST_BUCKETS, AppMetrics
from fhir_ai.store.cds import CdsStore, FeedbackEvent, IssuedCard
from tests.conftest import build_app, make_settings

UNREACHABLE_DB = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
ITEM_ROUTE = "/fhir/<resource_type>/<resource_id>"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(app: Flask) -> tuple[str, Samples]:
    """The raw ``/metrics`` text and its samples keyed by (name, labels)."""
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=" in response.content_type
    text = response.get_data(as_text=True)
    samples: Samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when absent."""
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return build_app(make_settings(tmp_path))


def test_metrics_are_per_app(app: Flask) -> None:
    assert isinstance(app.extensions["fhir_ai.metrics"], AppMetrics)
    assert app.extensions["fhir_ai.metrics"].registry is not None


def test_request_histogram_uses_route_templates_not_paths(app: Flask) -> None:
    client = app.test_client()
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "gender": "female", "birthDate": "1970"},
        headers={"Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    patient_id = created.get_json()["id"]
    assert client.get(f"/fhir/Patient/{patient_id}").status_code == 200
    assert client.get(f"/fhir/Patient/{patient_id}").status_code == 200
    assert client.get("/fhir/Patient/never-seen-patient-4711").status_code == 404
    assert client.get("/fhir/Patient?family=Secretname-PHI").status_code == 200
    assert client.get("/no/such/place/mrn-998877").status_code == 404

    text, samples = scrape(app)
    for secret in (patient_id, "never-seen-patient-4711", "Secretname-PHI", "mrn-998877"):
        assert secret not in text
    count = "fhir_ai_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route=ITEM_ROUTE, status="200") == 2
    assert value(samples, count, method="GET", route=ITEM_ROUTE, status="404") == 1
    assert value(samples, count, method="POST", route="/fhir/<resource_type>", status="201") == 1
    assert value(samples, count, method="GET", route="/fhir/<resource_type>", status="200") == 1
    assert value(samples, count, method="GET", route="unmatched", status="404") == 1
    bucket = "fhir_ai_http_request_duration_seconds_bucket"
    assert value(samples, bucket, method="GET", route=ITEM_ROUTE, status="200", le="5.0") == 2
    bounds = {
        float(dict(labels)["le"])
        for name, labels in samples
        if name == bucket and dict(labels).get("route") == ITEM_ROUTE
    }
    assert bounds == {*REQUEST_BUCKETS, float("inf")}
    assert min(REQUEST_BUCKETS) == 0.005
    assert max(REQUEST_BUCKETS) == 5.0
    assert value(samples, bucket, method="GET", route=ITEM_ROUTE, status="200", le="+Inf") == 2


def test_unusual_methods_share_one_label(app: Flask) -> None:
    app.test_client().open("/fhir/metadata", method="BREW")
    _, samples = scrape(app)
    labels = {dict(key[1]).get("method") for key in samples}
    assert "other" in labels
    assert "BREW" not in labels


def test_apps_do_not_share_registries(app: Flask, tmp_path: Path) -> None:
    other = build_app(make_settings(tmp_path / "other"))
    assert app.test_client().get("/healthz").status_code == 200
    _, mine = scrape(app)
    _, theirs = scrape(other)
    count = "fhir_ai_http_request_duration_seconds_count"
    assert value(mine, count, method="GET", route="/healthz", status="200") == 1
    assert value(theirs, count, method="GET", route="/healthz", status="200") is None


def test_cds_feedback_counters_and_accept_ratio(app: Flask) -> None:
    _, samples = scrape(app)
    assert not any(name.startswith("fhir_ai_cds_") for name, _ in samples)

    store = CdsStore(app.extensions["fhir_ai.engine"])
    cards = {name: [str(uuid.uuid4()) for _ in range(4)] for name in ("alpha", "beta")}
    store.record_cards(
        IssuedCard(card, service, str(uuid.uuid4()), "m@1", "warning" if i == 0 else "info")
        for service, uuids in cards.items()
        for i, card in enumerate(uuids)
    )
    store.record_cards([IssuedCard(str(uuid.uuid4()), "gamma", "h", None)])
    alpha = cards["alpha"]
    assert (
        store.record_feedback(
            "alpha",
            [
                FeedbackEvent(alpha[0], "accepted", WHEN, ["s1"], None),
                FeedbackEvent(alpha[1], "accepted", WHEN, ["s1"], None),
                FeedbackEvent(alpha[2], "accepted", WHEN, ["s1"], None),
                FeedbackEvent(alpha[3], "overridden", WHEN, [], {"userComment": "no"}),
            ],
        )
        == 4
    )
    # Feedback sent again is not counted again.
    assert (
        store.record_feedback("alpha", [FeedbackEvent(alpha[0], "accepted", WHEN, ["s1"], None)])
        == 0
    )
    assert (
        store.record_feedback(
            "beta", [FeedbackEvent(cards["beta"][0], "overridden", WHEN, [], None)]
        )
        == 1
    )
    assert store.feedback_counts() == {
        ("alpha", "accepted"): 3,
        ("alpha", "overridden"): 1,
        ("beta", "overridden"): 1,
    }
    assert store.card_counts() == {
        ("alpha", "info"): 3,
        ("alpha", "warning"): 1,
        ("beta", "info"): 3,
        ("beta", "warning"): 1,
        ("gamma", "unknown"): 1,
    }

    _, samples = scrape(app)
    feedback = "fhir_ai_cds_feedback_total"
    assert value(samples, feedback, service="alpha", outcome="accepted") == 3
    assert value(samples, feedback, service="alpha", outcome="overridden") == 1
    assert value(samples, feedback, service="beta", outcome="overridden") == 1
    assert value(samples, feedback, service="beta", outcome="accepted") is None
    cards_total = "fhir_ai_cds_cards_total"
    assert value(samples, cards_total, service="alpha", indicator="info") == 3
    assert value(samples, cards_total, service="alpha", indicator="warning") == 1
    assert value(samples, cards_total, service="gamma", indicator="unknown") == 1
    ratio = "fhir_ai_cds_feedback_accept_ratio"
    assert value(samples, ratio, service="alpha") == pytest.approx(0.75)
    assert value(samples, ratio, service="beta") == 0
    assert value(samples, ratio, service="gamma") is None  # cards but no feedback


def test_scrape_survives_an_unreachable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(tmp_path, database_url=UNREACHABLE_DB, log_format="json"))
    assert app.test_client().get("/healthz").status_code == 200
    capsys.readouterr()
    text, samples = scrape(app)
    assert not any(name.startswith("fhir_ai_cds_") for name, _ in samples)
    count = "fhir_ai_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/healthz", status="200") == 1
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    warnings = [line for line in logged if line["logger"] == "fhir_ai.metrics"]
    assert [(w["level"], w["error"]) for w in warnings] == [("WARNING", "OperationalError")]
    for leaked in ("nobody", "127.0.0.1:1"):
        assert leaked not in json.dumps(logged)
        assert leaked not in text
