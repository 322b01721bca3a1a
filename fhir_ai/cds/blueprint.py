"""CDS Hooks 2.0.1 endpoints under ``/cds-services``: discovery, service calls, feedback.

A route authenticates the client for its exact URL, parses into the strict models,
resolves prefetch, calls the service's pure ``evaluate`` and serialises the cards.
Errors are OperationOutcomes (400, 404, 412); a failed JWT is a bare 401.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from flask import Blueprint, Response, g, request
from pydantic import ValidationError

from fhir_ai.audit import audit_context
from fhir_ai.cds.actions import ActionCheck
from fhir_ai.cds.auth import CdsAuthenticator
from fhir_ai.cds.models import describe_validation_error, first_error_path
from fhir_ai.cds.prefetch import FhirReader, fhir_access, resolve_prefetch
from fhir_ai.cds.registry import ServiceRegistry
from fhir_ai.cds.requests import CdsRequest, FeedbackRequest, parse_context
from fhir_ai.cds.service import HookCall
from fhir_ai.errors import FhirAiError, InvalidRequest
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.security.cds_jwt import AuthenticationFailed
from fhir_ai.settings import Settings
from fhir_ai.store.background import BackgroundWriter
from fhir_ai.store.cds import CdsStore, FeedbackEvent, IssuedCard, write_issued_cards
from fhir_ai.urls import public_url

logger = logging.getLogger("fhir_ai.cds")
M = TypeVar("M", CdsRequest, FeedbackRequest)
JSON = "application/json"


def create_cds_blueprint(
    registry: ServiceRegistry,
    authenticator: CdsAuthenticator,
    reader: FhirReader,
    store: CdsStore,
    writer: BackgroundWriter,
    settings: Settings,
) -> Blueprint:
    """The ``/cds-services`` blueprint."""
    bp = Blueprint("cds", __name__)
    action_check = ActionCheck()

    def root_url() -> str:
        return public_url(settings)

    def endpoint_url() -> str:
        return root_url() + request.path

    def authenticate() -> None:
        client = authenticator.check(request.headers.get("Authorization"), endpoint_url())
        if client is not None:
            g.audit_client = f"{client.iss} {client.sub or ''}".strip()

    @bp.get("")
    @bp.get("/")
    def discovery() -> Response:
        authenticate()
        return _json(registry.discovery().to_json_dict())

    @bp.post("/<service_id>")
    def call(service_id: str) -> Response:
        authenticate()
        service = registry.get(service_id)
        hook_request = _parse(CdsRequest, _body())
        if hook_request.hook not in service.hooks:
            raise InvalidRequest(
                f"Service '{service.id}' answers {', '.join(service.hooks)}, "
                f"not '{hook_request.hook}'",
                expression="hook",
            )
        context = parse_context(hook_request.hook, hook_request.context)
        audit_context().entities.append(f"Patient/{context.patientId}")
        access = fhir_access(
            hook_request.fhirServer,
            hook_request.fhirAuthorization,
            allow_http=settings.cds_allow_http_fhir_server,
        )
        prefetch = resolve_prefetch(
            service.prefetch,
            service.required_prefetch,
            context.model_dump(),
            context.prefetch_tokens,
            hook_request.prefetch,
            access,
            reader,
        )
        call = HookCall(
            service.id,
            hook_request.hook,
            hook_request.hookInstance,
            context,
            prefetch,
            str(hook_request.fhirServer) if hook_request.fhirServer else None,
            root_url(),
        )
        response = action_check.without_invalid_actions(service.evaluate(call), service.id)
        audit_context().cards.extend(card.uuid for card in response.cards)
        if response.cards:  # remembered off the request path, with the audit
            issued = [
                IssuedCard(
                    card.uuid,
                    service.id,
                    hook_request.hookInstance,
                    service.version,
                    str(getattr(card.indicator, "value", card.indicator)),
                )
                for card in response.cards
            ]
            writer.submit(write_issued_cards, issued)
        logger.info(
            "hook call",
            extra={
                "service": service.id,
                "hook": hook_request.hook,
                "hook_instance": hook_request.hookInstance,
                "cards": [card.uuid for card in response.cards],
            },
        )
        return _json(response.to_json_dict())

    @bp.post("/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        authenticate()
        service = registry.get(service_id)
        items = _parse(FeedbackRequest, _body()).feedback
        new = store.record_feedback(
            service.id,
            (
                FeedbackEvent(
                    item.card,
                    item.outcome.value,
                    item.outcomeTimestamp,
                    item.accepted_suggestion_ids,
                    item.overrideReason.to_json_dict() if item.overrideReason else None,
                )
                for item in items
            ),
        )
        logger.info("feedback", extra={"service": service.id, "items": len(items), "new": new})
        return _json({})

    @bp.errorhandler(AuthenticationFailed)
    def unauthenticated(_error: AuthenticationFailed) -> Response:
        return Response(status=401, headers={"WWW-Authenticate": "Bearer"})

    @bp.errorhandler(FhirAiError)
    def error(error: FhirAiError) -> Response:
        outcome = operation_outcome(error.issue_code, error.message, expression=error.expression)
        return _json(outcome, error.http_status)

    return bp


def _body() -> Any:
    if request.mimetype != JSON:
        raise InvalidRequest("CDS Hooks calls take Content-Type application/json")
    try:
        return orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not valid JSON") from None


def _parse(model: type[M], body: Any) -> M:
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest(
            describe_validation_error(error), expression=first_error_path(error)
        ) from None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)
