"""The FHIR resources of a stored study: ImagingStudy, its Patient (when new) and Endpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from fhir_ai.imaging.dicom_json import text
from fhir_ai.store.dicom import StoredInstance

DICOM_UID: Final = "urn:dicom:uid"
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED: Final = "http://snomed.info/sct"
ENDPOINT_IDENTIFIER: Final = "https://fhir-ai.org/fhir/NamingSystem/endpoint"
WADO_RS_ENDPOINT_ID: Final = "dicomweb-wado-rs"

BodySite = Callable[[str | None], tuple[str, str] | None]


def study_identifier(study_uid: str) -> dict[str, str]:
    """``urn:dicom:uid`` identifier of a study (the OID as a URN)."""
    return {"system": DICOM_UID, "value": f"urn:oid:{study_uid}"}


def imaging_study(
    study_uid: str,
    instances: list[StoredInstance],
    subject: str,
    endpoint: str,
    body_site: BodySite,
    timezone: ZoneInfo | None = None,
) -> dict[str, Any]:
    """The ImagingStudy of ``instances`` (all of one study), ``available``; ``timezone`` is
    where the modality's local times are, for instances without a UTC offset."""
    first = instances[0].metadata
    series = _series(instances, body_site)
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "identifier": [study_identifier(study_uid)],
        "status": "available",
        "modality": _modalities(instances),
        "subject": {"reference": subject},
        "started": _started(
            text(first, "StudyDate"),
            text(first, "StudyTime"),
            text(first, "TimezoneOffsetFromUTC"),
            timezone,
        ),
        "endpoint": [{"reference": endpoint}],
        "numberOfSeries": len(series),
        "numberOfInstances": len(instances),
        "description": text(first, "StudyDescription"),
        "series": series,
    }
    accession = text(first, "AccessionNumber")
    if accession:
        study["identifier"].append(
            {"type": {"coding": [{"system": _V2_0203, "code": "ACSN"}]}, "value": accession}
        )
    return {k: v for k, v in study.items() if v not in (None, [], "")}


_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def wado_endpoint(address: str) -> dict[str, Any]:
    """The Endpoint naming this server's DICOMweb WADO-RS base URL."""
    return {
        "resourceType": "Endpoint",
        "identifier": [{"system": ENDPOINT_IDENTIFIER, "value": WADO_RS_ENDPOINT_ID}],
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
        },
        "name": "fhir-ai DICOMweb WADO-RS",
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["application/dicom"],
        "address": address,
    }


def patient_from_dicom(metadata: dict[str, Any], identifier_system: str) -> dict[str, Any]:
    """A Patient from the study's patient module (PatientID as identifier)."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": identifier_system, "value": text(metadata, "PatientID")}],
    }
    name = text(metadata, "PatientName")
    if name:
        family, _, given = name.partition("^")
        human: dict[str, Any] = {
            "text": " ".join(p for p in (given.replace("^", " "), family) if p)
        }
        if family:
            human["family"] = family
        if given.split("^")[0]:
            human["given"] = [given.split("^")[0]]
        patient["name"] = [human]
    gender = {"M": "male", "F": "female", "O": "other"}.get(text(metadata, "PatientSex") or "")
    if gender:
        patient["gender"] = gender
    birth = _date(text(metadata, "PatientBirthDate"))
    if birth:
        patient["birthDate"] = birth
    return patient


def _series(instances: list[StoredInstance], body_site: BodySite) -> list[dict[str, Any]]:
    grouped: dict[str, list[StoredInstance]] = {}
    for instance in instances:
        grouped.setdefault(instance.series_instance_uid, []).append(instance)
    return [_one_series(uid, members, body_site) for uid, members in grouped.items()]


def _one_series(uid: str, members: list[StoredInstance], body_site: BodySite) -> dict[str, Any]:
    first = members[0].metadata
    series: dict[str, Any] = {
        "uid": uid,
        "number": _int(text(first, "SeriesNumber")),
        "modality": {"system": DCM, "code": members[0].modality or "OT"},
        "description": text(first, "SeriesDescription"),
        "numberOfInstances": len(members),
        "instance": [
            {
                "uid": m.sop_instance_uid,
                "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{m.sop_class_uid}"},
                "number": m.instance_number,
            }
            for m in members
        ],
    }
    site = body_site(text(first, "BodyPartExamined"))
    if site:
        series["bodySite"] = {"system": SNOMED, "code": site[0], "display": site[1]}
    for item in series["instance"]:
        if item["number"] is None:
            del item["number"]
    return {k: v for k, v in series.items() if v is not None}


def _modalities(instances: list[StoredInstance]) -> list[dict[str, str]]:
    codes = sorted({i.modality for i in instances if i.modality})
    return [{"system": DCM, "code": code} for code in codes]


def _started(
    date: str | None, time: str | None, offset: str | None, timezone: ZoneInfo | None = None
) -> str | None:
    """DICOM date and time are local: a time is given only with its UTC offset, from
    TimezoneOffsetFromUTC (0008,0201) or else from the configured ``timezone`` (daylight
    saving included); without either, only the date."""
    day = _date(date)
    if not day:
        return None
    digits = (time or "").split(".")[0]
    if len(digits) < 4 or not digits.isdigit():
        return day
    clock = f"{digits[:2]}:{digits[2:4]}:{digits[4:6] or '00'}"
    if offset and len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
        return f"{day}T{clock}{offset[:3]}:{offset[3:]}"
    if timezone is not None:
        try:
            local = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=timezone)
        except ValueError:  # 24:00 or 61 seconds
            return day
        return local.isoformat()
    return day


def _date(value: str | None) -> str | None:
    if not value or len(value) != 8 or not value.isdigit():
        return None
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
