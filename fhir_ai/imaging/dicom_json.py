"""Reading values out of DICOM JSON (PS3.18 F.2) metadata."""

from __future__ import annotations

from typing import Any, Final

TAGS: Final = {
    "SOPClassUID": "00080016",
    "SOPInstanceUID": "00080018",
    "StudyDate": "00080020",
    "StudyTime": "00080030",
    "TimezoneOffsetFromUTC": "00080201",
    "AccessionNumber": "00080050",
    "Modality": "00080060",
    "StudyDescription": "00081030",
    "SeriesDescription": "0008103E",
    "PatientName": "00100010",
    "PatientID": "00100020",
    "IssuerOfPatientID": "00100021",
    "PatientBirthDate": "00100030",
    "PatientAge": "00101010",
    "PatientSex": "00100040",
    "BodyPartExamined": "00180015",
    "ViewPosition": "00185101",
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "StudyID": "00200010",
    "SeriesNumber": "00200011",
    "InstanceNumber": "00200013",
    "Laterality": "00200060",
    "ImageLaterality": "00200062",
    "NumberOfFrames": "00280008",
    "Rows": "00280010",
    "Columns": "00280011",
    "TransferSyntaxUID": "00020010",
}


def value(metadata: dict[str, Any], keyword: str) -> Any:
    """The first value of ``keyword`` (a PN as its Alphabetic string), or None."""
    element = metadata.get(TAGS[keyword], {})
    values = element.get("Value") or []
    if not values:
        return None
    first = values[0]
    if isinstance(first, dict):  # a person name
        return first.get("Alphabetic")
    return first


def text(metadata: dict[str, Any], keyword: str) -> str | None:
    """The first value as stripped text, or None when empty."""
    found = value(metadata, keyword)
    result = str(found).strip() if found is not None else ""
    return result or None


def element(vr: str, *values: Any) -> dict[str, Any]:
    """A DICOM JSON element; values omitted when there are none."""
    present = [v for v in values if v is not None and v != ""]
    return {"vr": vr, "Value": present} if present else {"vr": vr}
