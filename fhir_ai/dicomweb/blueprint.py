"""The ``/dicomweb`` blueprint: STOW-RS, WADO-RS (instances and metadata) and QIDO-RS studies.

Instances are returned exactly as stored (their original transfer syntax): a request for
another transfer syntax gets 406, as no transcoding is done.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, request
from werkzeug.http import parse_accept_header, parse_options_header

from fhir_ai.dicomweb import responses
from fhir_ai.dicomweb.ingest import StowService
from fhir_ai.dicomweb.multipart import related_body, related_boundary, split_parts
from fhir_ai.errors import FhirAiError, InvalidRequest, NotAcceptable, NotFound
from fhir_ai.security.dicomweb_access import install_dicomweb_auth
from fhir_ai.settings import Settings
from fhir_ai.store.dicom import DicomIndex, StoredInstance, StudyQuery
from fhir_ai.store.objects import ObjectStore
from fhir_ai.urls import public_url

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
_QIDO_KEYS = {
    "PatientID": "00100020",
    "StudyDate": "00080020",
    "ModalitiesInStudy": "00080061",
    "StudyInstanceUID": "0020000D",
}


def create_dicomweb_blueprint(
    stow: StowService, index: DicomIndex, objects: ObjectStore, settings: Settings
) -> Blueprint:
    """The DICOMweb routes over the stored instances."""
    bp = Blueprint("dicomweb", __name__)
    install_dicomweb_auth(bp, settings)  # SMART bearer tokens, ImagingStudy scopes

    def base_url() -> str:
        return public_url(settings, "/dicomweb")

    @bp.before_request
    def larger_bodies() -> None:
        request.max_content_length = settings.max_dicom_bytes

    @bp.post("/studies")
    @bp.post("/studies/<study>")
    def store(study: str | None = None) -> Response:
        boundary = related_boundary(request.headers.get("Content-Type"), DICOM)
        bodies = (p.body for p in split_parts(request.get_data(cache=False), boundary))
        result = stow.store(bodies, study)
        response = _json(responses.stow_response(result, base_url(), study))
        response.status_code = responses.stow_status(result)
        if result.tasks:
            fhir_base = public_url(settings, "/fhir")
            response.headers["Content-Location"] = f"{fhir_base}/Task/{result.tasks[0]}"
        if result.analysis_delayed:
            response.headers.add("Warning", '199 fhir-ai "analysis queue unavailable; delayed"')
        for warning in responses.reason_warnings(result):
            response.headers.add("Warning", warning)
        return response

    @bp.get("/studies")
    def search_studies() -> Response:
        query = _study_query(request.args)
        found = index.studies(query)
        body = [responses.study_attributes(uid, members, base_url()) for uid, members in found]
        return _json(body)

    @bp.get("/studies/<study>")
    @bp.get("/studies/<study>/series/<series>")
    @bp.get("/studies/<study>/series/<series>/instances/<instance>")
    def retrieve(study: str, series: str | None = None, instance: str | None = None) -> Response:
        found = _instances(index, study, series, instance)
        _check_transfer_syntax(found)
        if any(objects.path(i.object_key) is None for i in found):
            raise FhirAiError("The bytes of a stored instance are missing from the object store")
        content_type, chunks = related_body(
            ((_part_type(i), objects.get(i.object_key)) for i in found), DICOM
        )
        return Response(chunks, status=200, content_type=content_type)

    @bp.get("/studies/<study>/metadata")
    @bp.get("/studies/<study>/series/<series>/metadata")
    @bp.get("/studies/<study>/series/<series>/instances/<instance>/metadata")
    def metadata(study: str, series: str | None = None, instance: str | None = None) -> Response:
        found = _instances(index, study, series, instance)
        return _json([responses.instance_metadata(i, base_url()) for i in found])

    return bp


def _instances(
    index: DicomIndex, study: str, series: str | None, instance: str | None
) -> list[StoredInstance]:
    found = index.instances(study, series, instance)
    if not found:
        raise NotFound("No such study, series or instance on this server")
    return found


def _part_type(instance: StoredInstance) -> str:
    return f"{DICOM}; transfer-syntax={instance.transfer_syntax_uid}"


def _check_transfer_syntax(found: list[StoredInstance]) -> None:
    """406 when the client asks only for transfer syntaxes other than the stored ones."""
    accepted = parse_accept_header(request.headers.get("Accept", "*/*"))
    wanted: list[str] = []
    for value, _quality in accepted:
        media_type, options = parse_options_header(value)
        if media_type in ("*/*", "multipart/related", "multipart/*"):
            inner = options.get("type", DICOM)
            if inner not in (DICOM, "application/*", "*/*"):
                raise NotAcceptable(f"Instances are returned as {DICOM}, not {inner}")
            wanted.append(options.get("transfer-syntax", "*"))
    if not wanted or "*" in wanted:
        return
    stored = {i.transfer_syntax_uid for i in found}
    if not stored <= set(wanted):
        raise NotAcceptable(
            "Instances are returned in their stored transfer syntax (transfer-syntax=*); "
            "this server does not transcode"
        )


def _study_query(args: Any) -> StudyQuery:
    values: dict[str, str] = {}
    for name, tag in _QIDO_KEYS.items():
        value = args.get(name) or args.get(tag)
        if value:
            if "*" in value or "?" in value:
                raise InvalidRequest(f"Wildcard matching on {name} is not supported")
            values[name] = value
    date_from, date_to = _date_range(values.get("StudyDate"))
    return StudyQuery(
        patient_id=values.get("PatientID"),
        date_from=date_from,
        date_to=date_to,
        modality=values.get("ModalitiesInStudy"),
        study_uid=values.get("StudyInstanceUID"),
        limit=_bounded(args.get("limit"), 100, 1000),
        offset=_bounded(args.get("offset"), 0, 10**9),
    )


def _date_range(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    low, dash, high = value.partition("-")
    for part in (low, high):
        if part and (len(part) != 8 or not part.isdigit()):
            raise InvalidRequest("StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    if not dash:
        return low, low
    return low or None, high or None


def _bounded(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise InvalidRequest("limit and offset must be non-negative integers")
    return min(int(value), maximum)


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), status=200, content_type=DICOM_JSON)
