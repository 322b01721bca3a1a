"""DICOM JSON bodies of DICOMweb responses (PS3.18 10.5.3 and 10.6.3)."""

from __future__ import annotations

from typing import Any

from fhir_ai.dicomweb.ingest import InstanceOutcome, StowResult
from fhir_ai.imaging.dicom_json import element
from fhir_ai.imaging.dicom_status import COERCION_OF_DATA_ELEMENTS
from fhir_ai.store.dicom import StoredInstance

#: ErrorComment (0000,0902): the reason in words, beside the FailureReason/WarningReason code.
#: Its VR is LO (at most 64 characters), so a longer reason is cut there; the whole reasons
#: travel in ``Warning`` header fields (:func:`reason_warnings`).
ERROR_COMMENT = "00000902"
LO_MAX_CHARS = 64
#: At most this many ``Warning`` fields name instance reasons (a big refused study).
MAX_REASON_WARNINGS = 20


def stow_status(result: StowResult) -> int:
    """200 all stored, 409 none stored, 202 some refused or stored with warnings."""
    stored = [o for o in result.outcomes if o.stored]
    if not stored:
        return 409
    if len(stored) < len(result.outcomes) or any(o.warnings for o in stored):
        return 202
    return 200


def stow_response(result: StowResult, base_url: str, study_uid: str | None) -> dict[str, Any]:
    """The Store Instances Response Module as DICOM JSON."""
    body: dict[str, Any] = {}
    studies = {o.study_instance_uid for o in result.outcomes if o.stored}
    uid = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    if uid:
        body["00081190"] = element("UR", f"{base_url}/studies/{uid}")
    referenced = [_referenced(o, base_url) for o in result.outcomes if o.stored]
    failed = [_failed(o) for o in result.outcomes if not o.stored]
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    return body


def reason_warnings(result: StowResult) -> list[str]:
    """``Warning`` header values (RFC 9111 5.5, code 299 as PS3.18 uses it) with the whole
    reason of each refused or warned instance, which ErrorComment may cut."""
    values: list[str] = []
    for outcome in result.outcomes:
        if len(values) == MAX_REASON_WARNINGS:
            break
        reason = outcome.message if not outcome.stored else "; ".join(outcome.warnings)
        if reason:
            uid = outcome.sop_instance_uid
            text = f"{uid}: {reason}" if uid else reason
            quoted = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in text)
            values.append(f'299 fhir-ai "{quoted}"')
    return values


def _long_string(text: str) -> str:
    """``text`` as an LO value: cut at a word boundary to 64 characters with '...'."""
    if len(text) <= LO_MAX_CHARS:
        return text
    cut = text[: LO_MAX_CHARS - 3].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "..."


def _referenced(outcome: InstanceOutcome, base_url: str) -> dict[str, Any]:
    item = {
        "00081150": element("UI", outcome.sop_class_uid),
        "00081155": element("UI", outcome.sop_instance_uid),
        "00081190": element(
            "UR",
            f"{base_url}/studies/{outcome.study_instance_uid}/series/"
            f"{outcome.series_instance_uid}/instances/{outcome.sop_instance_uid}",
        ),
    }
    if outcome.warnings:
        item["00081196"] = element("US", COERCION_OF_DATA_ELEMENTS)  # WarningReason
        item[ERROR_COMMENT] = element("LO", _long_string("; ".join(outcome.warnings)))
    return item


def _failed(outcome: InstanceOutcome) -> dict[str, Any]:
    item = {
        "00081150": element("UI", outcome.sop_class_uid),
        "00081155": element("UI", outcome.sop_instance_uid),
        "00081197": element("US", outcome.failure_reason),
    }
    if outcome.message:
        item[ERROR_COMMENT] = element("LO", _long_string(outcome.message))
    return item


def instance_metadata(instance: StoredInstance, base_url: str) -> dict[str, Any]:
    """WADO-RS metadata of one instance: its DICOM JSON, pixel data as a BulkDataURI."""
    metadata = dict(instance.metadata)
    if "00280010" in metadata:  # an image: point at its frames
        url = (
            f"{base_url}/studies/{instance.study_instance_uid}/series/"
            f"{instance.series_instance_uid}/instances/{instance.sop_instance_uid}"
        )
        metadata["7FE00010"] = {"vr": "OB", "BulkDataURI": url}
    return metadata


def study_attributes(
    study_uid: str, instances: list[StoredInstance], base_url: str
) -> dict[str, Any]:
    """QIDO-RS study result attributes (PS3.18 Table 10.6.3-3)."""
    first = instances[0].metadata
    modalities = sorted({i.modality for i in instances if i.modality})
    series = {i.series_instance_uid for i in instances}
    found = {tag: first[tag] for tag in _STUDY_TAGS if tag in first}
    found.update(
        {
            "00080061": element("CS", *modalities),
            "00201206": element("IS", len(series)),
            "00201208": element("IS", len(instances)),
            "00081190": element("UR", f"{base_url}/studies/{study_uid}"),
            "0020000D": element("UI", study_uid),
        }
    )
    return found


_STUDY_TAGS = (
    "00080020",  # StudyDate
    "00080030",  # StudyTime
    "00080050",  # AccessionNumber
    "00080090",  # ReferringPhysicianName
    "00081030",  # StudyDescription
    "00100010",  # PatientName
    "00100020",  # PatientID
    "00100030",  # PatientBirthDate
    "00100040",  # PatientSex
    "00200010",  # StudyID
)
