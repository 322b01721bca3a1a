"""The FHIR R4 REST API under ``/fhir``: parse, call the service, serialize.

Every 4xx and 5xx answered under ``/fhir`` carries an OperationOutcome. Every store
session a view opens is confined to the compartment the SMART guard chose for the
request, if any (:func:`~fhir_ai.security.fhir_access.request_compartment`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Flask, Response, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from fhir_ai.errors import FhirAiError, InvalidRequest, MethodNotAllowed
from fhir_ai.fhir import http
from fhir_ai.fhir.bundles import history, searchset
from fhir_ai.fhir.capability import capability_statement
from fhir_ai.fhir.operations import CreatedHook, Operation
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.fhir.references import FHIR_ID, split_reference
from fhir_ai.fhir.service import FhirService
from fhir_ai.fhir.transaction import BundleProcessor
from fhir_ai.security.fhir_access import install_smart_auth, request_compartment
from fhir_ai.security.smart import capability_security
from fhir_ai.settings import Settings
from fhir_ai.store.repository import ResourceStore, StoredResource, StoreSession
from fhir_ai.urls import public_url

logger = logging.getLogger("fhir_ai.fhir")
_NOT_SEARCH = frozenset({"_format", "_pretty"})
_HTTP_ISSUE = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def create_fhir_blueprint(
    service: FhirService,
    store: ResourceStore,
    settings: Settings,
    operations: Sequence[Operation] = (),
    on_created: Sequence[CreatedHook] = (),
) -> Blueprint:
    """The ``/fhir`` blueprint bound to a service and a store, with extended operations.

    ``on_created`` hooks run after each commit that created resources (by POST or in a
    transaction/batch), with (type, id, version): they start work such as NLP extraction.
    """
    bp = Blueprint("fhir", __name__)
    bundles = BundleProcessor(service, store)
    install_smart_auth(bp, service, settings, operations=operations)  # SMART tokens and scopes
    for operation in operations:
        bp.add_url_rule(
            operation.rule,
            operation.name,
            operation.view,
            methods=list(operation.methods),
            defaults=operation.defaults(),
        )

    def base_url() -> str:
        return public_url(settings, "/fhir")

    @contextmanager
    def open_session(*, read_only: bool = False) -> Iterator[StoreSession]:
        with store.session(read_only=read_only, compartment=request_compartment()) as opened:
            yield opened

    def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        media_type = http.response_media_type(request)
        pretty = request.args.get("_pretty") == "true"
        response = http.json_response(body, status, media_type, pretty)
        response.headers.update(headers or {})
        return response

    def write_response(stored: StoredResource, status: int) -> Response:
        headers = http.version_headers(stored)
        headers["Location"] = http.location(base_url(), stored)
        mode = http.preferences(request).return_mode
        if mode == "minimal":
            response = Response(status=status, headers=headers)
            return response
        if mode == "OperationOutcome":
            verb = "Created" if status == 201 else "Updated"
            outcome = operation_outcome(
                "informational", f"{verb} {headers['Location']}", "information"
            )
            return respond(outcome, status, headers)
        return respond(stored.content, status, headers)

    def check_id(resource_id: str) -> None:
        if not FHIR_ID.match(resource_id):
            raise InvalidRequest(f"{resource_id!r} is not a valid FHIR id", expression="id")

    @bp.get("/metadata")
    def metadata() -> Response:
        security = capability_security(settings)
        declared = [operation.declared for operation in operations]
        return respond(capability_statement(service.registry, base_url(), security, declared))

    @bp.post("/")
    @bp.post("")
    def transaction() -> Response:
        body = http.parse_json_body(request)
        prefer = request.headers.get("Prefer", "")
        result = bundles.process(
            body,
            base_url(),
            with_resources="return=representation" in prefer,
            compartment=request_compartment(),
        )
        for entry in result["entry"]:
            response = entry.get("response", {})
            if str(response.get("status", "")).startswith("201"):
                created = split_reference(response["location"])
                for hook in on_created:
                    hook(*created)
        return respond(result)

    @bp.get("/<resource_type>")
    def search(resource_type: str) -> Response:
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in _NOT_SEARCH]
        return _search(resource_type, params)

    @bp.post("/<resource_type>/_search")
    def search_post(resource_type: str) -> Response:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise InvalidRequest("POST _search takes application/x-www-form-urlencoded parameters")
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in _NOT_SEARCH]
        params += list(request.form.items(multi=True))
        return _search(resource_type, params)

    def _search(resource_type: str, params: list[tuple[str, str]]) -> Response:
        http.response_media_type(request)
        strict = http.preferences(request).strict
        query = service.parse_search(resource_type, params, strict=strict)
        with open_session(read_only=True) as session:
            result = service.search(session, query, base_url())
        return respond(searchset(query, result, base_url()))

    @bp.post("/<resource_type>")
    def create(resource_type: str) -> Response:
        service.check_type(resource_type)
        http.response_media_type(request)
        body = _binary_body() if resource_type == "Binary" else http.parse_json_body(request)
        resource = service.checked_resource(resource_type, body)
        resource.pop("id", None)
        with open_session() as session:
            stored, created = service.create(
                session, resource, base_url(), request.headers.get("If-None-Exist")
            )
        if created:
            for hook in on_created:
                hook(stored.resource_type, stored.id, str(stored.version_id))
        return write_response(stored, 201 if created else 200)

    @bp.put("/<resource_type>")
    def conditional_update(resource_type: str) -> Response:
        body = http.parse_json_body(request)
        resource = service.checked_resource(resource_type, body)
        if not request.query_string:
            raise InvalidRequest("PUT without an id needs search criteria (conditional update)")
        with open_session() as session:
            result = service.conditional_update(
                session, resource, request.query_string.decode(), base_url()
            )
        return write_response(result.stored, 201 if result.created else 200)

    @bp.delete("/<resource_type>")
    def conditional_delete(resource_type: str) -> Response:
        service.check_type(resource_type)
        if not request.query_string:
            raise MethodNotAllowed("DELETE on a type needs search criteria (conditional delete)")
        with open_session() as session:
            service.conditional_delete(
                session, resource_type, request.query_string.decode(), base_url()
            )
        return Response(status=204)

    @bp.get("/<resource_type>/<resource_id>")
    def read(resource_type: str, resource_id: str) -> Response:
        service.check_type(resource_type)
        check_id(resource_id)
        with open_session(read_only=True) as session:
            stored = session.read(resource_type, resource_id)
        if resource_type == "Binary" and _wants_raw_binary():
            return _raw_binary(stored)
        return respond(stored.content, 200, http.version_headers(stored))

    @bp.put("/<resource_type>/<resource_id>")
    def update(resource_type: str, resource_id: str) -> Response:
        check_id(resource_id)
        http.response_media_type(request)
        body = http.parse_json_body(request)
        resource = service.checked_resource(resource_type, body, resource_id)
        with open_session() as session:
            result = service.update(session, resource, resource_id, http.if_match_version(request))
        return write_response(result.stored, 201 if result.created else 200)

    @bp.delete("/<resource_type>/<resource_id>")
    def delete(resource_type: str, resource_id: str) -> Response:
        service.check_type(resource_type)
        check_id(resource_id)
        with open_session() as session:
            session.delete(resource_type, resource_id)
        return Response(status=204)

    @bp.get("/<resource_type>/<resource_id>/_history")
    def instance_history(resource_type: str, resource_id: str) -> Response:
        service.check_type(resource_type)
        check_id(resource_id)
        count = _int_arg("_count", settings.default_page_size, settings.max_page_size)
        offset = _int_arg("_offset", 0, None)
        with open_session(read_only=True) as session:
            versions, total = session.history(resource_type, resource_id, count, offset)
        self_url = f"{base_url()}/{resource_type}/{resource_id}/_history"
        return respond(history(versions, total, base_url(), self_url))

    @bp.get("/<resource_type>/<resource_id>/_history/<version_id>")
    def vread(resource_type: str, resource_id: str, version_id: str) -> Response:
        service.check_type(resource_type)
        check_id(resource_id)
        if not version_id.isdigit():
            raise InvalidRequest(f"{version_id!r} is not a version id")
        with open_session(read_only=True) as session:
            stored = session.vread(resource_type, resource_id, int(version_id))
        return respond(stored.content, 200, http.version_headers(stored))

    @bp.errorhandler(FhirAiError)
    def fhir_error(error: FhirAiError) -> Response:
        return _outcome_response(
            error.http_status, error.issue_code, error.message, error.expression
        )

    return bp


def register_fhir_error_handlers(app: Flask) -> None:
    """OperationOutcome for any HTTP error or crash under ``/fhir``."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        if not request.path.startswith("/fhir"):
            return error
        status = error.code or 500
        message = error.description or error.name
        if status == 413:
            message = "The request body is larger than this server accepts"
        return _outcome_response(status, _HTTP_ISSUE.get(status, "processing"), message, None)

    @app.errorhandler(FhirAiError)
    def app_fhir_error(error: FhirAiError) -> Response:
        return _outcome_response(
            error.http_status, error.issue_code, error.message, error.expression
        )

    @app.errorhandler(OperationalError)
    def database_unavailable(error: OperationalError) -> Response:
        logger.error("database unavailable", extra={"error_type": type(error.orig).__name__})
        message = "The database is not reachable; try again later"
        if not request.path.startswith("/fhir"):
            return http.json_response({"error": message}, 503, "application/json")
        return _outcome_response(503, "transient", message, None)

    @app.errorhandler(Exception)
    def crash(error: Exception) -> Response:
        logger.exception("unhandled error", extra={"error_type": type(error).__name__})
        if not request.path.startswith("/fhir"):
            return http.json_response({"error": "internal server error"}, 500, "application/json")
        return _outcome_response(500, "exception", "Internal server error", None)


def _outcome_response(status: int, code: str, message: str, expression: str | None) -> Response:
    return http.json_response(
        operation_outcome(code, message, expression=expression), status, http.FHIR_JSON
    )


def _int_arg(name: str, default: int, maximum: int | None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise InvalidRequest(f"{name} must be a non-negative integer", expression=name)
    return min(int(raw), maximum) if maximum else int(raw)


def _binary_body() -> Any:
    if request.mimetype in http.JSON_TYPES:
        return http.parse_json_body(request)
    data = request.get_data()
    return {
        "resourceType": "Binary",
        "contentType": request.mimetype or "application/octet-stream",
        "data": base64.b64encode(data).decode("ascii"),
    }


def _wants_raw_binary() -> bool:
    if request.args.get("_format"):
        return False
    best = request.accept_mimetypes.best
    return bool(best) and best not in http.JSON_TYPES and best != "*/*"


def _raw_binary(stored: StoredResource) -> Response:
    content = stored.content or {}
    data = base64.b64decode(content.get("data", ""))
    headers = http.version_headers(stored)
    return Response(
        data, mimetype=content.get("contentType", "application/octet-stream"), headers=headers
    )
