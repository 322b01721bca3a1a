"""SMART authorization of the ``/fhir`` blueprint: token check and per-interaction scopes.

:func:`install_smart_auth` adds one ``before_request`` hook to the FHIR blueprint. Unless
``FHIR_AI_FHIR_AUTH=off``, every request except ``GET /fhir/metadata`` and ``OPTIONS``
needs a valid bearer access token (else 401, OperationOutcome ``login``,
``WWW-Authenticate: Bearer``); its :class:`ScopeSet` goes to ``flask.g.smart_scopes``.
The hook then checks the interaction the matched view performs, by endpoint name, with
the view's own arguments, before the view runs (else 403, OperationOutcome
``forbidden``). A view this module does not know is refused (fail closed): a new route
on the blueprint must be added to :data:`_ROUTE_INTERACTIONS`.

Conditional create, update and delete also need ``search`` on the type (they reveal
whether matches exist). A transaction or batch Bundle is checked entry by entry (and the
conditional references inside its resources need ``search`` on their type) before any
entry runs: one forbidden entry refuses the whole Bundle, batch included.

``patient/`` grants (see :mod:`fhir_ai.security.scopes`) are not decided here resource
by resource: the hook puts the token patient's :class:`PatientCompartment`, for the
types the request reaches only through ``patient/`` scopes, in
``flask.g.smart_compartment`` (:func:`request_compartment`), and the views open their
store sessions confined to it. The store then checks each resource inside the statement
that reads or writes it (no extra query): reads outside the compartment are 404,
searches and includes are filtered, writes outside it are 403. For a Bundle the union of
its entries' confined types applies to every entry. Extended operations are refused to
``patient/`` grants (the store cannot confine the work they start).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, g, request

from fhir_ai.errors import FhirAiError, Forbidden
from fhir_ai.fhir import http
from fhir_ai.fhir.operations import Operation
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.fhir.search.compartment import PatientCompartment
from fhir_ai.fhir.search.query import SearchQuery
from fhir_ai.fhir.service import FhirService
from fhir_ai.fhir.transaction import Entry, _parse_entry
from fhir_ai.security.scopes import ALLOWED, Decision, Interaction, ScopeSet
from fhir_ai.security.smart import (
    AccessDenied,
    AuthenticationFailed,
    SmartTokenVerifier,
    build_smart_verifier,
    smart_configuration,
)
from fhir_ai.settings import Settings
from fhir_ai.urls import public_url

logger = logging.getLogger("fhir_ai.security")

#: The interaction each FHIR view performs (``transaction`` is checked per entry).
_ROUTE_INTERACTIONS: dict[str, Interaction] = {
    "search": "search",
    "search_post": "search",
    "create": "create",
    "conditional_update": "update",
    "conditional_delete": "delete",
    "read": "read",
    "update": "update",
    "delete": "delete",
    "instance_history": "history",
    "vread": "vread",
}
_OPEN_ROUTES = frozenset({"metadata"})
_ACCESS = tuple[str, Interaction, SearchQuery | None]


def request_compartment() -> PatientCompartment | None:
    """The compartment the current ``/fhir`` request is confined to, if any."""
    compartment: PatientCompartment | None = g.get("smart_compartment")
    return compartment


def install_smart_auth(
    bp: Blueprint,
    service: FhirService,
    settings: Settings,
    verifier: SmartTokenVerifier | None = None,
    operations: Sequence[Operation] = (),
) -> None:
    """Guard ``bp`` (the ``/fhir`` blueprint) as the settings ask; no-op when auth is off.

    ``verifier`` replaces the one built from the settings (for tests).
    """
    if verifier is None:
        verifier = build_smart_verifier(settings)
    if verifier is None:
        return
    guard = _Guard(service, settings, verifier, {o.name: o.interaction for o in operations})
    bp.before_request(guard.before_request)
    bp.register_error_handler(AuthenticationFailed, _unauthorized)
    bp.register_error_handler(Forbidden, _forbidden)  # AccessDenied, and confined writes


def register_smart_configuration(app: Flask, settings: Settings) -> None:
    """``GET /.well-known/smart-configuration`` (and under ``/fhir``); no token needed."""

    def view() -> Response:
        response = http.json_response(smart_configuration(settings), 200, "application/json")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    app.add_url_rule("/.well-known/smart-configuration", "smart_configuration", view)
    app.add_url_rule("/fhir/.well-known/smart-configuration", "fhir_smart_configuration", view)


class _Guard:
    def __init__(
        self,
        service: FhirService,
        settings: Settings,
        verifier: SmartTokenVerifier,
        operations: dict[str, Interaction],
    ):
        self.service = service
        self.settings = settings
        self.verifier = verifier
        self.interactions = {**_ROUTE_INTERACTIONS, **operations}
        self.operations = frozenset(operations)

    def base_url(self) -> str:
        return public_url(self.settings, "/fhir")

    def before_request(self) -> None:
        route = (request.endpoint or "").rsplit(".", 1)[-1]
        if request.method == "OPTIONS" or route in _OPEN_ROUTES:
            return
        audience = self.settings.fhir_audience or self.base_url()
        access = self.verifier.verify(request.headers.get("Authorization"), audience)
        g.smart_scopes = access.scopes
        g.smart_access = access
        g.audit_client = access.label
        g.audit_user = access.fhir_user
        if request.url_rule is None:
            return
        args = request.view_args or {}
        if route == "transaction":
            self.confine(access.scopes, self.check_bundle(access.scopes))
            return
        interaction = self.interactions.get(route)
        resource_type = args.get("resource_type")
        if interaction is None or not isinstance(resource_type, str):
            logger.warning("FHIR route %s has no SMART scope rule: refused", route)
            raise AccessDenied("This interaction is not available to SMART access tokens")
        if not access.scopes.mentions(resource_type, interaction):  # before parsing anything
            _require(access.scopes, (resource_type, interaction, None))
        decision = ALLOWED
        for access_check in self.route_accesses(route, resource_type, interaction):
            decision &= _require(access.scopes, access_check)
        if decision.confined and route in self.operations:
            raise AccessDenied(
                "Extended operations need a system/ or user/ scope; patient/ scopes do "
                "not allow them"
            )
        self.confine(access.scopes, decision)

    def confine(self, scopes: ScopeSet, decision: Decision) -> None:
        """Hand the confinement the decision needs to the views (see the module doc)."""
        if decision.confined and scopes.patient is not None:
            g.smart_compartment = PatientCompartment.of(
                scopes.patient, decision.confined, scopes.compartment
            )

    def route_accesses(
        self, route: str, resource_type: str, interaction: Interaction
    ) -> Iterator[_ACCESS]:
        if interaction != "search":
            yield resource_type, interaction, None
        if route in ("search", "search_post"):
            params = list(request.args.items(multi=True))
            if route == "search_post" and request.mimetype == "application/x-www-form-urlencoded":
                params += list(request.form.items(multi=True))
            strict = http.preferences(request).strict
            query = self.service.parse_search(resource_type, params, strict=strict)
            yield resource_type, "search", query
        elif route in ("conditional_update", "conditional_delete") and request.query_string:
            yield self.criteria_search(resource_type, request.query_string.decode())
        elif route == "create" and request.headers.get("If-None-Exist"):
            yield self.criteria_search(resource_type, request.headers["If-None-Exist"])

    def criteria_search(self, resource_type: str, criteria: str, strict: bool = True) -> _ACCESS:
        """A conditional operation's search, parsed as ``FhirService.matching_ids`` does.

        ``strict=False`` parses like a Bundle's GET search entry instead.
        """
        if strict:
            criteria = criteria.split("?", 1)[-1]
        params = parse_qsl(criteria, keep_blank_values=True)
        if strict and not params:  # refused later as empty criteria
            return resource_type, "search", None
        return (
            resource_type,
            "search",
            self.service.parse_search(resource_type, params, strict=strict),
        )

    def check_bundle(self, scopes: ScopeSet) -> Decision:
        """Refuse the whole Bundle if any entry is not allowed (malformed ones fail later)."""
        decision = ALLOWED
        body = http.parse_json_body(request)
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            return decision
        entries = body.get("entry") or []
        if body.get("type") not in ("transaction", "batch") or not isinstance(entries, list):
            return decision
        base_url = self.base_url()
        for index, raw in enumerate(entries):
            try:
                entry = _parse_entry(index, raw, base_url)
            except (FhirAiError, ValueError):
                continue  # the Bundle processor fails on this entry in the same way
            for access_check in self.entry_accesses(entry):
                decision &= _require(scopes, access_check, f"Bundle entry {index}: ")
        return decision

    def entry_accesses(self, entry: Entry) -> Iterator[_ACCESS]:
        kind = entry.resource_type
        if entry.method in ("GET", "HEAD"):
            if entry.resource_id is None:
                yield self.safe_search(kind, entry.criteria or "", strict=False)
            else:
                yield kind, "vread" if entry.version else "read", None
            return
        method: dict[str, Interaction] = {"POST": "create", "PUT": "update", "DELETE": "delete"}
        yield kind, method[entry.method], None
        conditions = entry.if_none_exist if entry.method == "POST" else entry.criteria
        if conditions:
            yield self.safe_search(kind, conditions)
        for reference in _conditional_references(entry.resource):
            target, _, criteria = reference.partition("?")
            yield self.safe_search(target, criteria)

    def safe_search(self, resource_type: str, criteria: str, strict: bool = True) -> _ACCESS:
        """Like :meth:`criteria_search`; unparseable criteria need an unconditional grant."""
        try:
            return self.criteria_search(resource_type, criteria, strict)
        except (FhirAiError, ValueError):
            return resource_type, "search", None


def _require(scopes: ScopeSet, access: _ACCESS, prefix: str = "") -> Decision:
    resource_type, interaction, query = access
    decision = scopes.decide(resource_type, interaction, search=query)
    if not decision.allowed:
        raise AccessDenied(
            f"{prefix}the access token's scopes do not allow {interaction} of {resource_type}"
        )
    return decision


def _conditional_references(value: Any) -> Iterator[str]:
    """``Type?criteria`` references in a resource (resolved by a search in transactions)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                if "?" in item and not item.startswith(("http:", "https:", "urn:")):
                    yield item
            else:
                yield from _conditional_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _conditional_references(item)


def _unauthorized(error: AuthenticationFailed) -> Response:
    challenge = 'Bearer realm="fhir"'
    if request.headers.get("Authorization"):
        challenge += ', error="invalid_token"'
    return _outcome(401, error, challenge)


def _forbidden(error: Forbidden) -> Response:
    return _outcome(403, error, 'Bearer realm="fhir", error="insufficient_scope"')


def _outcome(status: int, error: FhirAiError, challenge: str) -> Response:
    body = operation_outcome(error.issue_code, error.message)
    response = http.json_response(body, status, http.FHIR_JSON)
    response.headers["WWW-Authenticate"] = challenge
    return response
