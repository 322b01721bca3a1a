"""Cards and feedback are stored idempotently, with the model version, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from flask import Flask

from fhir_ai.store.cds import CdsStore, FeedbackEvent, IssuedCard

pytestmark = pytest.mark.integration


def test_feedback_is_idempotent_and_names_the_model_version(backend_app: Flask) -> None:
    store = CdsStore(backend_app.extensions["fhir_ai.engine"])
    service = f"svc-{uuid.uuid4().hex[:8]}"
    card = str(uuid.uuid4())
    store.record_cards([IssuedCard(card, service, str(uuid.uuid4()), "pneumonia-cxr@1.0.0")])
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    accepted = FeedbackEvent(card, "accepted", when, ["s1"], None)
    overridden = FeedbackEvent(card, "overridden", when, [], {"userComment": "not relevant"})
    assert store.record_feedback(service, [accepted, overridden]) == 2
    assert store.record_feedback(service, [accepted]) == 0
    assert store.record_feedback(service, [accepted, accepted]) == 0
    assert store.outcome_counts(service) == {"accepted": 1, "overridden": 1}
    unknown = FeedbackEvent(str(uuid.uuid4()), "accepted", when, ["x"], None)
    assert store.record_feedback(service, [unknown]) == 1
    assert store.outcome_counts(service) == {"accepted": 2, "overridden": 1}
