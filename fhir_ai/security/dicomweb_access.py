"""SMART authorization of ``/dicomweb``: the same bearer tokens as ``/fhir``.

Studies are ImagingStudy data: STOW-RS needs ``ImagingStudy`` create, WADO-RS read and
QIDO-RS search (``system/ImagingStudy.crs``, say). Only unconditional ``system/`` or
``user/`` grants count: a ``patient/`` scope cannot be checked against DICOM PatientIDs.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from fhir_ai.fhir import http
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.security.scopes import Interaction
from fhir_ai.security.smart import AccessDenied, AuthenticationFailed, build_smart_verifier
from fhir_ai.settings import Settings
from fhir_ai.urls import public_url


def install_dicomweb_auth(bp: Blueprint, settings: Settings) -> None:
    """Guard ``bp`` unless ``FHIR_AI_FHIR_AUTH=off``."""
    verifier = build_smart_verifier(settings)
    if verifier is None:
        return

    def before_request() -> None:
        if request.method == "OPTIONS":
            return
        audience = settings.fhir_audience or public_url(settings, "/fhir")
        access = verifier.verify(request.headers.get("Authorization"), audience)
        g.audit_client = access.label
        g.audit_user = access.fhir_user
        interaction = _interaction()
        if not access.scopes.allows("ImagingStudy", interaction):
            raise AccessDenied(f"the access token's scopes do not allow {interaction} of studies")

    bp.before_request(before_request)
    bp.register_error_handler(AuthenticationFailed, _unauthorized)
    bp.register_error_handler(AccessDenied, _forbidden)


def _interaction() -> Interaction:
    if request.method == "POST":
        return "create"
    if (request.endpoint or "").endswith("search_studies"):
        return "search"
    return "read"


def _unauthorized(error: AuthenticationFailed) -> Response:
    return _outcome(401, error.issue_code, error.message, 'Bearer realm="dicomweb"')


def _forbidden(error: AccessDenied) -> Response:
    challenge = 'Bearer realm="dicomweb", error="insufficient_scope"'
    return _outcome(403, error.issue_code, error.message, challenge)


def _outcome(status: int, code: str, message: str, challenge: str) -> Response:
    response = http.json_response(operation_outcome(code, message), status, "application/json")
    response.headers["WWW-Authenticate"] = challenge
    return response
