"""CDS Hooks 2.0.1 wire models: every shared spec/library example, every invariant."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fhir_ai.cds.models import (
    Action,
    ActionType,
    Card,
    CdsResponse,
    Coding,
    DiscoveryResponse,
    FeedbackOutcome,
    Hook,
    Indicator,
    Link,
    LinkType,
    OverrideReason,
    SelectionBehavior,
    ServiceDescriptor,
    Source,
    Suggestion,
    describe_validation_error,
)
from fhir_ai.cds.requests import (
    CONTEXT_MODELS,
    AppointmentBookContext,
    CdsRequest,
    EncounterDischargeContext,
    EncounterStartContext,
    FeedbackItem,
    FeedbackRequest,
    FhirAuthorization,
    OrderSelectContext,
    OrderSignContext,
    PatientViewContext,
    parse_context,
    prefetch_template_problems,
    prefetch_token_fields,
    template_tokens,
)
from fhir_ai.errors import InvalidRequest

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("FHIR_AI_SHARED_DATA_DIR") or REPO_ROOT / "../shared/data").resolve()
CDS = SHARED / "cds"
EXAMPLE_DIRS = ("spec-2.0.1", "spec-3.0.0-ballot", "hooks-library")
TOKEN = "some-opaque-fhir-access-token"
HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"


def load(name: str) -> Any:
    return json.loads((CDS / name).read_text(encoding="utf-8"))


def errors_of(call: Callable[[], object]) -> str:
    """The concise message of the ValidationError ``call`` raises."""
    with pytest.raises(ValidationError) as caught:
        call()
    return describe_validation_error(caught.value)


def context_error(hook: str, context: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_context(hook, context)
    return caught.value


# --------------------------------------------------------------------------------------
# One checker per example file. Each returns nothing and asserts what the file shows.
# --------------------------------------------------------------------------------------


def _action(kind: ActionType) -> Callable[[str], None]:
    def check(name: str) -> None:
        action = Action.model_validate(load(name))
        assert action.type is kind
        assert action.description
        if kind is ActionType.DELETE:
            assert action.resourceId == "ServiceRequest/procedure-request-1"
            assert action.resource is None
        else:
            assert action.resource is not None
        # Valid inside a suggestion too (it has a description, cds-resp-5).
        Suggestion(label="x", actions=[action])

    return check


def check_override_reasons(name: str) -> None:
    reasons = [OverrideReason.model_validate(r) for r in load(name)["overrideReasons"]]
    assert [r.display for r in reasons] == ["Patient refused", "Contraindicated"]
    card = Card(
        summary="s", indicator=Indicator.INFO, source=Source(label="x"), overrideReasons=reasons
    )
    assert len(card.to_json_dict()["overrideReasons"]) == 2


def check_source(name: str) -> None:
    source = Source.model_validate(load(name)["source"])
    assert source.topic is not None and source.topic.display == "Mosquito born virus"
    assert source.to_json_dict() == load(name)["source"]


def check_draft_orders_fragment(name: str) -> None:
    """A context fragment (no userId/patientId): rejected alone, valid once completed."""
    fragment = load(name)["context"]
    error = context_error("order-sign", fragment)
    assert "context.userId: Field required" in error.message
    assert "context.patientId: Field required" in error.message
    completed = {"userId": "Practitioner/example", "patientId": "1288992", **fragment}
    context = parse_context("order-sign", completed)
    assert isinstance(context, OrderSignContext)
    # Only root-level primitive fields the hook marks as tokens; draftOrders is not one.
    assert context.token_values()["context.encounterId"] == "456"
    assert "draftOrders" not in OrderSignContext.prefetch_tokens
    if "medicationRequestId" in fragment:
        assert context.model_extra == {"medicationRequestId": "123"}
        (problem,) = prefetch_template_problems(
            "order-sign", "MedicationRequest/{{context.medicationRequestId}}"
        )
        assert "not a 2.0.1 prefetch token of order-sign" in problem


def check_discovery(name: str) -> None:
    discovery = DiscoveryResponse.model_validate(load(name))
    assert discovery.services
    for service in discovery.services:
        for template in service.prefetch.values():
            assert prefetch_template_problems(service.hook, template) == []
    assert discovery.to_json_dict() == load(name)


def check_feedback(name: str) -> None:
    request = FeedbackRequest.model_validate(load(name))
    (item,) = request.feedback
    assert item.outcomeTimestamp.tzinfo is not None
    if item.outcome is FeedbackOutcome.ACCEPTED:
        assert item.accepted_suggestion_ids == ["e56e1945-20b3-4393-8503-a1a20fd73152"]
    elif item.overrideReason is not None:
        assert item.overrideReason.reason is not None
        assert item.overrideReason.userComment
    assert request.to_json_dict() == load(name)


def check_fhir_authorization(name: str) -> None:
    auth = FhirAuthorization.model_validate(load(name)["fhirAuthorization"])
    assert auth.bearer_token() == TOKEN
    assert auth.authorization_header() == f"Bearer {TOKEN}"
    assert auth.scopes == ["user/Patient.read", "user/Observation.read"]
    for text in (repr(auth), str(auth), auth.model_dump_json(), json.dumps(auth.to_json_dict())):
        assert TOKEN not in text


def check_prefetch_data(name: str) -> None:
    """The spec's prefetch values inside a request (one is a bare string: tolerated)."""
    body = load("spec-2.0.1/request-patient-view.json") | load(name)
    request = CdsRequest.model_validate(body)
    assert set(request.prefetch) == {"patient", "hemoglobin-a1c", "user"}
    assert request.prefetch["hemoglobin-a1c"]["resourceType"] == "Bundle"


def check_templates_2_0_1(name: str) -> None:
    templates: dict[str, str] = load(name)["prefetch"]
    for template in templates.values():
        tokens = template_tokens(template)
        assert tokens
        assert all(t.startswith("context.") or t.startswith("user") for t in tokens)
        assert prefetch_template_problems("patient-view", template) == []


def check_templates_3_0(name: str) -> None:
    """3.0 FHIRPath tokens parse, and are reported as not CDS Hooks 2.0.1."""
    templates: dict[str, str] = load(name)["prefetch"]
    for key, template in templates.items():
        tokens = template_tokens(template)
        assert tokens, key
        fhirpath = [t for t in tokens if t != "context.patientId"]
        assert fhirpath, key
        problems = prefetch_template_problems("order-sign", template)
        assert len(problems) == len(fhirpath), key
        assert all("3.0" in problem for problem in problems)


def check_request(name: str) -> None:
    body = load(name)
    request = CdsRequest.model_validate(body)
    context = request.hook_context()
    assert type(context) is CONTEXT_MODELS[Hook(body["hook"])]
    assert context.patientId == "1288992"
    if request.fhirAuthorization is not None:
        assert request.fhirServer is not None
        assert TOKEN not in repr(request) + str(request) + request.model_dump_json()
    dumped = request.to_json_dict()
    if request.fhirAuthorization is not None:
        dumped["fhirAuthorization"]["access_token"] = TOKEN
    assert dumped == body


def check_request_with_extension(name: str) -> None:
    """Valid request envelope; its patient-view context lacks the REQUIRED patientId."""
    request = CdsRequest.model_validate(load(name))
    assert request.extension is not None
    assert request.extension["com.example.timestamp"] == "2017-11-27T22:13:25Z"
    with pytest.raises(InvalidRequest) as caught:
        request.hook_context()
    assert caught.value.message == "context.patientId: Field required"
    assert caught.value.expression == "context.patientId"


def check_response_without_indicator(name: str) -> None:
    """Both editions' autolaunchable example omit the REQUIRED card indicator."""
    body = load(name)
    assert "indicator" not in body["cards"][0]
    message = errors_of(lambda: CdsResponse.model_validate(body))
    assert message == "cards[0].indicator: Field required"
    # With an indicator it is fine, and autolaunchable survives serialisation.
    body["cards"][0]["indicator"] = "info"
    response = CdsResponse.model_validate(body)
    assert response.cards[0].links[0].autolaunchable is True
    assert response.to_json_dict() == body


def check_response(name: str) -> None:
    body = load(name)
    response = CdsResponse.model_validate(body)
    dumped = response.to_json_dict()
    for card_in, card_out in zip(body["cards"], dumped["cards"], strict=True):
        card_in.setdefault("uuid", card_out["uuid"])  # a uuid is always issued
    assert dumped == body
    if name.endswith("systemActions.json"):
        assert response.systemActions[0].description is None  # allowed outside suggestions
    if name.endswith("empty-cards.json"):
        assert dumped == {"cards": []}


def check_order_sign_context(name: str) -> None:
    context = parse_context("order-sign", load(name)["context"])
    assert isinstance(context, OrderSignContext)
    assert len(context.draftOrders["entry"]) == 2


def check_operation_outcome(name: str) -> None:
    """The 3.0 '412' body is an R4 OperationOutcome, not a CDS object."""
    from fhir_ai.fhir.resources import validate_resource

    body = load(name)
    assert body["resourceType"] == "OperationOutcome"
    validate_resource(body)


def skip_jwt(name: str) -> None:
    pytest.skip(
        f"{name}: JWT/JWK material for the client's Authorization header, not a CDS Hooks "
        "JSON body; it belongs to the JWT verifier (fhir_ai.security), not to these models"
    )


UNSUPPORTED_HOOKS = {
    "allergyintolerance-create",
    "medication-refill",
    "medication-verify",
    "order-dispatch",
    "problem-list-item-create",
}
NOT_R4_TYPES = {"MedicationOrder", "DiagnosticOrder", "ProcedureRequest", "ReferralRequest"}


def check_library_context(name: str) -> None:
    match = re.fullmatch(r"hooks-library/hook-(.+?)-context.*\.json", name)
    assert match is not None
    hook = match.group(1)
    context = load(name)["context"]
    if hook in UNSUPPORTED_HOOKS:
        with pytest.raises(InvalidRequest, match="not supported"):
            parse_context(hook, context)
        pytest.skip(f"{name}: hook {hook} is not one this server supports")
    types = re.findall(r'"resourceType": "(\w+)"', json.dumps(context))
    pre_r4 = sorted(NOT_R4_TYPES.intersection(types))
    if pre_r4:
        assert "DSTU2" in name
        pytest.skip(f"{name}: DSTU2 shape, holds {', '.join(pre_r4)} which does not exist in R4")
    # STU3-labelled variants hold only types that R4 also has, so their shape is R4's.
    parsed = parse_context(hook, context)
    assert type(parsed) is CONTEXT_MODELS[Hook(hook)]
    assert parsed.hook.value == hook
    assert parsed.patientId == "1288992"
    for field in parsed.prefetch_tokens:
        if field in context:
            assert parsed.token_values()[f"context.{field}"] == context[field]


CHECKS: dict[str, Callable[[str], None]] = {
    "spec-2.0.1/action-create.json": _action(ActionType.CREATE),
    "spec-2.0.1/action-delete.json": _action(ActionType.DELETE),
    "spec-2.0.1/action-update.json": _action(ActionType.UPDATE),
    "spec-2.0.1/card-overrideReasons-example.json": check_override_reasons,
    "spec-2.0.1/card-source-example.json": check_source,
    "spec-2.0.1/context-draftOrders-no-token.json": check_draft_orders_fragment,
    "spec-2.0.1/context-draftOrders-with-medicationRequestId.json": check_draft_orders_fragment,
    "spec-2.0.1/discovery-response.json": check_discovery,
    "spec-2.0.1/discovery-with-extension.json": check_discovery,
    "spec-2.0.1/feedback-accepted.json": check_feedback,
    "spec-2.0.1/feedback-overridden-no-reason.json": check_feedback,
    "spec-2.0.1/feedback-overridden-with-reason.json": check_feedback,
    "spec-2.0.1/fhirAuthorization-example.json": check_fhir_authorization,
    "spec-2.0.1/jwk-private-example.json": skip_jwt,
    "spec-2.0.1/jwks-public-example.json": skip_jwt,
    "spec-2.0.1/jwt-example-authorization-header.txt": skip_jwt,
    "spec-2.0.1/jwt-header-example.json": skip_jwt,
    "spec-2.0.1/jwt-payload-example.json": skip_jwt,
    "spec-2.0.1/prefetch-data-example.json": check_prefetch_data,
    "spec-2.0.1/prefetch-template-hba1c.json": check_templates_2_0_1,
    "spec-2.0.1/prefetch-template-user-read.json": check_templates_2_0_1,
    "spec-2.0.1/prefetch-template-user-search.json": check_templates_2_0_1,
    "spec-2.0.1/prefetch-templates-example.json": check_templates_2_0_1,
    "spec-2.0.1/request-patient-view.json": check_request,
    "spec-2.0.1/request-with-extension.json": check_request_with_extension,
    "spec-2.0.1/response-autolaunchable.json": check_response_without_indicator,
    "spec-2.0.1/response-cards-links-overrideReasons.json": check_response,
    "spec-2.0.1/response-empty-cards.json": check_response,
    "spec-2.0.1/response-systemActions.json": check_response,
    "spec-3.0.0-ballot/context-order-sign-two-medicationrequests.json": check_order_sign_context,
    "spec-3.0.0-ballot/error-412-operationoutcome.json": check_operation_outcome,
    "spec-3.0.0-ballot/prefetch-template-fhirpath-chained-variables.json": check_templates_3_0,
    "spec-3.0.0-ballot/prefetch-template-fhirpath-meds-prescriber-appointments.json": (
        check_templates_3_0
    ),
    "spec-3.0.0-ballot/prefetch-template-fhirpath-today-minus-90-days.json": check_templates_3_0,
    "spec-3.0.0-ballot/request-order-sign-paginated-prefetch.json": check_request,
    "spec-3.0.0-ballot/response-autolaunchable.json": check_response_without_indicator,
}


def example_files() -> list[str]:
    if not CDS.is_dir():
        return []
    return sorted(
        f"{folder}/{path.name}"
        for folder in EXAMPLE_DIRS
        for path in (CDS / folder).iterdir()
        if path.is_file()
    )


def check_for(name: str) -> Callable[[str], None]:
    if name.startswith("hooks-library/"):
        return check_library_context
    return CHECKS[name]


needs_shared = pytest.mark.skipif(
    not CDS.is_dir(), reason=f"shared CDS data not found at {CDS} (set FHIR_AI_SHARED_DATA_DIR)"
)


@needs_shared
def test_every_example_file_has_a_check() -> None:
    files = example_files()
    assert len(files) > 40
    unchecked = [f for f in files if not f.startswith("hooks-library/") and f not in CHECKS]
    assert unchecked == []
    assert sorted(set(CHECKS) - set(files)) == []


@needs_shared
@pytest.mark.parametrize("name", example_files() or ["(no shared data)"])
def test_example(name: str) -> None:
    check_for(name)(name)


@needs_shared
@pytest.mark.parametrize(
    "name",
    [
        "schema/fhir-logical-models/examples-used-by-validator/discovery.json",
        "schema/fhir-logical-models/examples-used-by-validator/request-patient-view.json",
        "schema/fhir-logical-models/examples-used-by-validator/response.json",
    ],
)
def test_fhir_tools_ig_examples(name: str) -> None:
    if name.endswith("discovery.json"):
        check_discovery(name)
    elif name.endswith("request-patient-view.json"):
        check_request(name)
    else:
        check_response(name)


# --------------------------------------------------------------------------------------
# Invariants and rules, one by one.
# --------------------------------------------------------------------------------------

SOURCE = Source(label="Imaging AI")


def card(**fields: Any) -> dict[str, Any]:
    return {"summary": "Check this", "indicator": "info", "source": {"label": "x"}} | fields


def suggestion(label: str = "Do it", **fields: Any) -> dict[str, Any]:
    action = {"type": "create", "description": "d", "resource": {"resourceType": "Task"}}
    return {"label": label, "actions": [action]} | fields


def test_cds_r_1_fhir_authorization_needs_fhir_server() -> None:
    body = load_request_body()
    del body["fhirServer"]
    message = errors_of(lambda: CdsRequest.model_validate(body))
    assert message == "fhirServer is required when fhirAuthorization is present (cds-r-1)"
    del body["fhirAuthorization"]
    assert CdsRequest.model_validate(body).fhirServer is None


def test_cds_resp_1_at_most_one_recommended() -> None:
    two = [suggestion("a", isRecommended=True), suggestion("b", isRecommended=True)]
    message = errors_of(
        lambda: Card.model_validate(card(suggestions=two, selectionBehavior="at-most-one"))
    )
    assert "(cds-resp-1)" in message
    assert Card.model_validate(card(suggestions=two, selectionBehavior="any"))
    one = [suggestion("a", isRecommended=True), suggestion("b", isRecommended=False)]
    assert Card.model_validate(card(suggestions=one, selectionBehavior="at-most-one"))


def test_cds_resp_3_app_context_only_on_smart_links() -> None:
    link = {"label": "App", "url": "https://app.example.org/launch", "appContext": "job=1"}
    message = errors_of(lambda: Link.model_validate(link | {"type": "absolute"}))
    assert message == "appContext is only allowed on smart links (cds-resp-3)"
    assert Link.model_validate(link | {"type": "smart"}).type is LinkType.SMART


def test_cds_resp_4_override_reasons_need_display() -> None:
    reason = {"system": "http://example.org/reasons", "code": "x"}
    message = errors_of(lambda: Card.model_validate(card(overrideReasons=[reason])))
    assert message == "overrideReasons[0].display: Field required"
    assert Coding.model_validate(reason).display is None  # a plain Coding may omit it


def test_cds_resp_5_suggestion_actions_need_description() -> None:
    action = {"type": "delete", "resourceId": "ServiceRequest/1"}
    message = errors_of(lambda: Suggestion.model_validate({"label": "x", "actions": [action]}))
    assert message == "actions[0].description is required in a suggestion (cds-resp-5)"
    assert CdsResponse.model_validate({"cards": [], "systemActions": [action]})


def test_cds_resp_6_suggestions_need_selection_behavior() -> None:
    message = errors_of(lambda: Card.model_validate(card(suggestions=[suggestion()])))
    assert message == "selectionBehavior is required when suggestions are present (cds-resp-6)"
    built = Card(
        summary="Order a follow-up CT",
        indicator=Indicator.WARNING,
        source=SOURCE,
        suggestions=[Suggestion.model_validate(suggestion())],
        selectionBehavior=SelectionBehavior.ANY,
    )
    assert built.to_json_dict()["selectionBehavior"] == "any"


def test_actions_need_their_target() -> None:
    assert "a create action needs resource" in errors_of(
        lambda: Action.model_validate({"type": "create", "description": "d"})
    )
    assert "needs resourceId (cds-resp-2)" in errors_of(
        lambda: Action.model_validate({"type": "delete", "description": "d"})
    )
    deprecated = {"type": "delete", "resourceId": "Task/1", "resource": {"resourceType": "Task"}}
    assert "not resource (cds-resp-2)" in errors_of(lambda: Action.model_validate(deprecated))
    assert "resourceType" in errors_of(
        lambda: Action.model_validate({"type": "update", "resource": {"id": "1"}})
    )
    assert "ResourceType/id" in errors_of(
        lambda: Action.model_validate({"type": "delete", "resourceId": "not a reference"})
    )


@pytest.mark.parametrize(("length", "ok"), [(1, True), (139, True), (140, False)])
def test_summary_shorter_than_140(length: int, ok: bool) -> None:
    body = card(summary="x" * length)
    if ok:
        assert Card.model_validate(body).summary == "x" * length
    else:
        assert errors_of(lambda: Card.model_validate(body)) == (
            "summary: String should have at most 139 characters"
        )
    assert "summary" in errors_of(lambda: Card.model_validate(card(summary="")))


@pytest.mark.parametrize("obsolete", ["hard-stop", "success", "INFO", ""])
def test_indicator_enum(obsolete: str) -> None:
    message = errors_of(lambda: Card.model_validate(card(indicator=obsolete)))
    assert message == "indicator: Input should be 'info', 'warning' or 'critical'"


def test_enums_are_strings() -> None:
    enums: list[type[StrEnum]] = [
        Indicator,
        SelectionBehavior,
        ActionType,
        LinkType,
        FeedbackOutcome,
    ]
    for enum in enums:
        for member in enum:
            assert isinstance(member, str)
            assert str(member) == member.value
    assert [i.value for i in Indicator] == ["info", "warning", "critical"]
    assert SelectionBehavior("at-most-one") is SelectionBehavior.AT_MOST_ONE
    assert [h.value for h in Hook] == [
        "patient-view",
        "order-select",
        "order-sign",
        "encounter-start",
        "encounter-discharge",
        "appointment-book",
    ]
    assert set(CONTEXT_MODELS) == set(Hook)


def test_unknown_members_rejected_on_the_response_side() -> None:
    assert errors_of(lambda: Card.model_validate(card(selectionbehavior="any"))) == (
        "selectionbehavior: Extra inputs are not permitted"
    )


def test_extension_allowed_with_reverse_domain_keys() -> None:
    ext = {"com.example.model-version": "1.2.0"}
    built = Card.model_validate(card(extension=ext, links=[]))
    assert built.to_json_dict()["extension"] == ext
    assert Suggestion.model_validate(suggestion(extension=ext)).extension == ext
    assert "reverse-domain" in errors_of(lambda: Card.model_validate(card(extension={"x": 1})))
    assert "must not be empty" in errors_of(lambda: Card.model_validate(card(extension={})))


def test_cds_fb_1_outcome_enum() -> None:
    item = {"card": "c", "outcome": "ignored", "outcomeTimestamp": "2021-12-11T10:05:31Z"}
    message = errors_of(lambda: FeedbackItem.model_validate(item))
    assert message == "outcome: Input should be 'accepted' or 'overridden'"


def test_cds_fb_2_accepted_needs_accepted_suggestions() -> None:
    item: dict[str, Any] = {
        "card": "c",
        "outcome": "accepted",
        "outcomeTimestamp": "2021-12-11T10:05:31Z",
    }
    message = errors_of(lambda: FeedbackItem.model_validate(item))
    assert message == "acceptedSuggestions is required when outcome is accepted (cds-fb-2)"
    item["acceptedSuggestions"] = [{"id": "s1"}]
    assert FeedbackItem.model_validate(item).accepted_suggestion_ids == ["s1"]


def test_cds_fb_3_override_reason_needs_reason_or_comment() -> None:
    item = {
        "card": "c",
        "outcome": "overridden",
        "overrideReason": {},
        "outcomeTimestamp": "2021-12-11T10:05:31Z",
    }
    message = errors_of(lambda: FeedbackItem.model_validate(item))
    assert message == "overrideReason: overrideReason needs reason or userComment (cds-fb-3)"
    item["overrideReason"] = {"userComment": "Patient declined"}
    assert FeedbackItem.model_validate(item).overrideReason is not None


@pytest.mark.parametrize(
    "timestamp", ["2021-12-11T10:05:31", "2021-12-11", "11/12/2021 10:05", 1639217131]
)
def test_outcome_timestamp_is_rfc3339(timestamp: object) -> None:
    item = {"card": "c", "outcome": "overridden", "outcomeTimestamp": timestamp}
    message = errors_of(lambda: FeedbackItem.model_validate(item))
    assert message.startswith("outcomeTimestamp: ")


def test_feedback_request_not_empty() -> None:
    message = errors_of(lambda: FeedbackRequest.model_validate({"feedback": []}))
    assert message.startswith("feedback: List should have at least 1 item")


# --------------------------------------------------------------------------------------
# Serialisation.
# --------------------------------------------------------------------------------------


def test_serializer_drops_nulls_and_empties_but_keeps_cards() -> None:
    built = Card(
        uuid="c1",
        summary="No findings",
        indicator=Indicator.INFO,
        source=Source(label="Imaging AI", url=None),
        detail=None,
        links=[],
        suggestions=[],
    )
    assert CdsResponse(cards=[built], systemActions=[]).to_json_dict() == {
        "cards": [
            {
                "uuid": "c1",
                "summary": "No findings",
                "indicator": "info",
                "source": {"label": "Imaging AI"},
            }
        ]
    }
    assert CdsResponse.no_guidance().to_json_dict() == {"cards": []}
    assert json.loads(CdsResponse(cards=[]).model_dump_json()) == {"cards": []}
    assert DiscoveryResponse(services=[]).to_json_dict() == {"services": []}


def test_serializer_leaves_resources_alone() -> None:
    resource = {"resourceType": "Patient", "name": [{"given": ["A", "B"]}], "_given": [None, {}]}
    action = Action(type=ActionType.UPDATE, description="d", resource=resource)
    assert action.to_json_dict()["resource"] == resource


def test_builders_issue_fresh_uuids() -> None:
    first = Card(summary="a", indicator=Indicator.INFO, source=SOURCE)
    second = Card(summary="a", indicator=Indicator.INFO, source=SOURCE)
    assert first.uuid != second.uuid
    assert Suggestion(label="x").uuid != Suggestion(label="x").uuid
    message = errors_of(lambda: CdsResponse(cards=[first, first]))
    assert message == "each card uuid must be unique"


def test_discovery_descriptor() -> None:
    service = ServiceDescriptor(
        hook="order-select", id="chest-ct-triage", description="Flags urgent chest CT orders"
    )
    assert service.to_json_dict() == {
        "hook": "order-select",
        "id": "chest-ct-triage",
        "description": "Flags urgent chest CT orders",
    }
    assert "URL path segment" in errors_of(
        lambda: ServiceDescriptor(hook="patient-view", id="a/b", description="d")
    )
    assert "(id, hook) pair must be unique" in errors_of(
        lambda: DiscoveryResponse(services=[service, service])
    )


# --------------------------------------------------------------------------------------
# Requests, contexts, secrets.
# --------------------------------------------------------------------------------------


def load_request_body() -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": HOOK_INSTANCE,
        "fhirServer": "https://ehr.example.org/fhir",
        "fhirAuthorization": {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read",
            "subject": "cds-service4",
        },
        "context": {"userId": "Practitioner/example", "patientId": "1288992"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "1288992"}, "hba1c": None},
    }


def test_access_token_never_shown_unless_asked() -> None:
    request = CdsRequest.model_validate(load_request_body())
    auth = request.fhirAuthorization
    assert auth is not None
    shown = [
        repr(request),
        str(request),
        request.model_dump_json(),
        json.dumps(request.to_json_dict()),
        repr(request.model_dump()),
        repr(auth),
        str(auth),
        f"{auth}",
        auth.model_dump_json(),
    ]
    for text in shown:
        assert TOKEN not in text
    assert "**********" in request.model_dump_json()
    assert auth.bearer_token() == TOKEN
    revealed = json.loads(request.model_dump_json(context={"reveal_secrets": True}))
    assert revealed["fhirAuthorization"]["access_token"] == TOKEN


def test_request_repr_hides_context_and_prefetch() -> None:
    text = repr(CdsRequest.model_validate(load_request_body()))
    assert "1288992" not in text


def test_prefetch_null_is_kept() -> None:
    request = CdsRequest.model_validate(load_request_body())
    assert request.prefetch["hba1c"] is None
    assert request.to_json_dict()["prefetch"]["hba1c"] is None
    body = load_request_body()
    body["prefetch"] = {"patient": {"id": "no resourceType"}}
    assert errors_of(lambda: CdsRequest.model_validate(body)) == (
        "prefetch: prefetch value 'patient' must be a FHIR resource or null"
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("hookInstance", "not-a-uuid", "hookInstance: must be a UUID"),
        ("fhirServer", "ftp://ehr.example.org", "fhirServer: must be an absolute http(s) URL"),
        ("hook", "", "hook: String should have at least 1 character"),
        ("context", [], "context: Input should be a valid dictionary"),
    ],
)
def test_request_fields(field: str, value: object, expected: str) -> None:
    body = load_request_body() | {field: value}
    assert errors_of(lambda: CdsRequest.model_validate(body)) == expected


def test_fhir_authorization_fields() -> None:
    auth = load_request_body()["fhirAuthorization"]
    assert FhirAuthorization.model_validate(auth | {"token_type": "bearer"}).token_type == "Bearer"
    assert errors_of(lambda: FhirAuthorization.model_validate(auth | {"token_type": "MAC"})) == (
        "token_type: Input should be 'Bearer'"
    )
    message = errors_of(lambda: FhirAuthorization.model_validate(auth | {"expires_in": "300"}))
    assert message == "expires_in: Input should be a valid integer"
    assert "access_token: must not be empty" in errors_of(
        lambda: FhirAuthorization.model_validate(auth | {"access_token": ""})
    )
    message = errors_of(lambda: FhirAuthorization.model_validate({"access_token": TOKEN}))
    assert TOKEN not in message
    assert "token_type: Field required" in message


def test_validation_errors_never_echo_input() -> None:
    secret = "Jane Q Patient 1970-01-01"
    bad = {"summary": secret * 10, "indicator": secret, "source": secret, "detail": 42}
    with pytest.raises(ValidationError) as caught:
        Card.model_validate(bad)
    assert secret not in describe_validation_error(caught.value)
    assert secret not in str(caught.value)  # hide_input_in_errors
    message = context_error("patient-view", {"userId": secret, "patientId": secret}).message
    assert secret not in message
    assert "context.userId: must be a reference Type/id" in message
    assert "context.patientId: must be a FHIR id" in message


@pytest.mark.parametrize(
    ("hook", "context", "model"),
    [
        ("patient-view", {"userId": "Patient/1", "patientId": "1"}, PatientViewContext),
        ("patient-view", {"userId": "RelatedPerson/1", "patientId": "1"}, PatientViewContext),
        (
            "encounter-start",
            {"userId": "Practitioner/1", "patientId": "1", "encounterId": "e"},
            EncounterStartContext,
        ),
        (
            "encounter-discharge",
            {"userId": "PractitionerRole/1", "patientId": "1", "encounterId": "e"},
            EncounterDischargeContext,
        ),
        (
            "appointment-book",
            {
                "userId": "Patient/1",
                "patientId": "1",
                "appointments": {
                    "resourceType": "Bundle",
                    "entry": [{"resource": {"resourceType": "Appointment", "id": "a"}}],
                },
                "com.example.future-field": True,
            },
            AppointmentBookContext,
        ),
    ],
)
def test_contexts_accepted(hook: str, context: dict[str, Any], model: type) -> None:
    assert type(parse_context(Hook(hook), context)) is model


DRAFTS = {
    "resourceType": "Bundle",
    "entry": [{"resource": {"resourceType": "ServiceRequest", "id": "ct1"}}],
}
BASE = {"userId": "Practitioner/1", "patientId": "1"}


@pytest.mark.parametrize(
    ("hook", "context", "expected"),
    [
        ("patient-view", {"patientId": "1"}, "context.userId: Field required"),
        (
            "patient-view",
            {"userId": "1", "patientId": "1"},
            "context.userId: must be a reference Type/id with Type one of Patient, "
            "Practitioner, PractitionerRole, RelatedPerson",
        ),
        (
            "order-sign",
            {"userId": "Patient/1", "patientId": "1", "draftOrders": DRAFTS},
            "context.userId: must be a reference Type/id with Type one of Practitioner, "
            "PractitionerRole",
        ),
        ("encounter-start", BASE, "context.encounterId: Field required"),
        ("encounter-discharge", BASE, "context.encounterId: Field required"),
        ("order-sign", BASE, "context.draftOrders: Field required"),
        (
            "order-sign",
            BASE | {"draftOrders": {"resourceType": "Patient"}},
            "context.draftOrders: must be a FHIR Bundle (resourceType 'Bundle')",
        ),
        (
            "order-sign",
            BASE | {"draftOrders": {"resourceType": "Bundle", "entry": [{}]}},
            "context.draftOrders: entry[0] must hold a resource with a resourceType",
        ),
        (
            "order-select",
            BASE | {"draftOrders": DRAFTS, "selections": ["ServiceRequest/other"]},
            "context: selections[0] does not name a draftOrders entry",
        ),
        (
            "order-select",
            BASE | {"draftOrders": DRAFTS, "selections": []},
            "context.selections: List should have at least 1 item after validation, not 0",
        ),
        (
            "appointment-book",
            BASE | {"appointments": DRAFTS},
            "context.appointments: entry[0] must be an Appointment",
        ),
        (
            "patient-view",
            BASE | {"encounterId": "a/b"},
            "context.encounterId: must be a FHIR id (1-64 characters: letters, digits, '-', '.')",
        ),
        (
            "patient-view",
            BASE | {"patientId": "1\n"},
            "context.patientId: must be a FHIR id (1-64 characters: letters, digits, '-', '.')",
        ),
        (
            "patient-view",
            BASE | {"userId": "Practitioner/1\n"},
            "context.userId: must be a reference Type/id with Type one of Patient, "
            "Practitioner, PractitionerRole, RelatedPerson",
        ),
    ],
)
def test_contexts_rejected(hook: str, context: dict[str, Any], expected: str) -> None:
    assert context_error(hook, context).message == expected


def test_order_select_context() -> None:
    context = parse_context(
        "order-select", BASE | {"draftOrders": DRAFTS, "selections": ["ServiceRequest/ct1"]}
    )
    assert isinstance(context, OrderSelectContext)
    assert context.selections == ["ServiceRequest/ct1"]


def test_unsupported_hook() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_context("org.example.imaging-result-ready", BASE)
    assert caught.value.message.startswith("hook 'org.example.imaging-result-ready' is not")
    assert caught.value.expression == "hook"
    assert caught.value.http_status == 400


def test_prefetch_tokens_per_hook() -> None:
    for hook in Hook:
        assert prefetch_token_fields(hook) == {"userId", "patientId", "encounterId"}
    context = parse_context("order-sign", BASE | {"encounterId": "e1", "draftOrders": DRAFTS})
    assert context.token_values() == {
        "context.userId": "Practitioner/1",
        "context.patientId": "1",
        "context.encounterId": "e1",
        "userPractitionerId": "1",
    }
    assert prefetch_template_problems("order-sign", "Patient/{{context.patientId}}") == []
    (problem,) = prefetch_template_problems("order-sign", "x?id={{userPatientId}}")
    assert "can never be filled" in problem
    assert prefetch_template_problems("patient-view", "x?id={{userPatientId}}") == []
    (problem,) = prefetch_template_problems("patient-view", "Patient/{{context.patientId")
    assert "unbalanced" in problem
    assert template_tokens("A?b={{ context.patientId }}&c={{userPractitionerId}}") == [
        "context.patientId",
        "userPractitionerId",
    ]
