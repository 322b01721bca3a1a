"""Action resources are checked as FHIR R4 before a response leaves (rule 130)."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from fhir_ai.cds.actions import ActionCheck
from fhir_ai.cds.models import (
    Action,
    ActionType,
    Card,
    CdsResponse,
    Indicator,
    SelectionBehavior,
    Source,
    Suggestion,
)
from fhir_ai.fhir.ai_results import AiFinding, AiImagingReport
from fhir_ai.fhir.nlp_results import NoteFinding
from fhir_ai.recommend.imaging_cards import attach_prior_study, report_card
from fhir_ai.recommend.problem_list import problems_card

PNEUMONIA = ("http://snomed.info/sct", "233604007")
REPORT = AiImagingReport(
    id="r1",
    status="preliminary",
    effective=datetime(2026, 11, 20, 8, 30),
    codings=frozenset({("http://loinc.org", "36643-5")}),
    title="Chest X-ray",
    findings=(AiFinding(*PNEUMONIA, "Pneumonia", 0.9, "POS", "pneumonia-cxr 1.0.0", None),),
)
OPEN_URL = "https://ai.example/fhir/DiagnosticReport/r1"


def _create(resource: dict[str, object]) -> Suggestion:
    return Suggestion(
        label="Add", actions=[Action(type=ActionType.CREATE, description="d", resource=resource)]
    )


def test_invalid_suggestions_and_system_actions_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}}
    bad = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "onset": "x"}
    card = Card(
        summary="s",
        indicator=Indicator.INFO,
        source=Source(label="t"),
        suggestions=[_create(good), _create(bad)],
        selectionBehavior=SelectionBehavior.ANY,
    )
    only_bad = card.model_copy(update={"uuid": "other", "suggestions": [_create(bad)]})
    response = CdsResponse(
        cards=[card, only_bad],
        systemActions=[
            Action(type=ActionType.UPDATE, resource=good),
            Action(type=ActionType.UPDATE, resource={"resourceType": "NoSuchType"}),
        ],
    )
    with caplog.at_level(logging.ERROR, logger="fhir_ai.cds"):
        checked = ActionCheck().without_invalid_actions(response, "svc")
    assert [c.uuid for c in checked.cards] == [card.uuid, "other"]  # the cards stay
    assert checked.cards[0].suggestions == [card.suggestions[0]]
    assert checked.cards[1].suggestions == [] and checked.cards[1].selectionBehavior is None
    assert [a.resource for a in checked.systemActions] == [good]
    assert len(caplog.records) == 3
    assert all("Patient/p1" not in str(r.__dict__) for r in caplog.records)  # no resource
    assert caplog.records[0].problems == ["Condition.onset"]  # type: ignore[attr-defined]


def test_a_valid_response_is_returned_as_is() -> None:
    response = CdsResponse(
        cards=[report_card(REPORT, "p1", "https://ai.example", frozenset(), OPEN_URL)]
    )
    assert ActionCheck().without_invalid_actions(response, "svc") is response


def test_the_products_action_resources_are_valid_r4() -> None:
    imaging = report_card(REPORT, "p1", "https://ai.example", frozenset(), OPEN_URL)
    finding = NoteFinding(
        codings=frozenset({PNEUMONIA}),
        display="Pneumonia",
        coding={"system": PNEUMONIA[0], "code": PNEUMONIA[1], "display": "Pneumonia"},
        assertion="present",
        historical=False,
        hypothetical=False,
        family=False,
        sentence="Findings consistent with pneumonia.",
        document="DocumentReference/d1",
        noted=datetime(2026, 11, 20),
    )
    notes = problems_card([finding], "p1")
    order = {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }
    attach = attach_prior_study(order, REPORT, "https://ai.example")
    assert attach is not None
    response = CdsResponse(cards=[imaging, notes], systemActions=[attach])
    assert imaging.suggestions and notes.suggestions
    assert ActionCheck().without_invalid_actions(response, "svc") is response


def test_the_verdict_of_each_content_is_remembered_and_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check = ActionCheck(remembered=2)
    good = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}}
    bad = {**good, "onset": "x"}
    reordered = {"subject": {"reference": "Patient/p1"}, "resourceType": "Condition"}

    def view(resource: dict[str, object]) -> int:
        response = CdsResponse(
            cards=[], systemActions=[Action(type=ActionType.UPDATE, resource=resource)]
        )
        return len(check.without_invalid_actions(response, "svc").systemActions)

    with caplog.at_level(logging.ERROR, logger="fhir_ai.cds"):
        assert [view(good), view(reordered), view(bad), view(bad)] == [1, 1, 0, 0]
    info = check._problems_of.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)  # same content, any key order
    assert len(caplog.records) == 2  # an invalid resource is logged on every response
    assert view({**good, "id": "c1"}) == 1  # a new content is validated in full
    assert check._problems_of.cache_info().currsize == 2
