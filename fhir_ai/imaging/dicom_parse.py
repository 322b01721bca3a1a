"""Reading one DICOM instance as received: checks, the reason for a refusal, metadata.

Reasons never quote element values (they may be PHI); they name the rule that failed and,
with it, the DICOM status code STOW-RS reports (PS3.4 / PS3.18 FailureReason).
"""

from __future__ import annotations

import gzip
import io
import warnings
from dataclasses import dataclass
from typing import Any

import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from fhir_ai.errors import DicomRejected
from fhir_ai.imaging.dicom_status import (
    DOES_NOT_MATCH_SOP_CLASS,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
)
from fhir_ai.imaging.pixel_checks import check_pixels

PIXEL_DATA_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: pydicom's default reading validation logs invalid element *values* at WARNING, and
#: values may be PHI: this process reads quietly and reports problems by rule instead.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
#: Type 1 attributes of mandatory modules (PS3.3), checked for the IODs we route or store.
_TYPE_1_BY_SOP_CLASS: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.5.1.4.1.1.1": ("Modality",),  # CR Image
    "1.2.840.10008.5.1.4.1.1.1.1": ("Modality",),  # Digital X-Ray Image, for presentation
    "1.2.840.10008.5.1.4.1.1.6.1": ("Modality",),  # Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.481.5": ("RTPlanLabel", "RTPlanGeometry", "ApprovalStatus"),
}


@dataclass(frozen=True, slots=True)
class ParsedInstance:
    """What ingestion needs from one instance (its bytes are stored as received)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    modality: str | None
    body_part: str | None
    view: str | None
    laterality: str | None
    patient_id: str | None
    patient_name: str | None
    patient_birth_date: str | None
    patient_age: str | None
    patient_sex: str | None
    study_date: str | None
    study_time: str | None
    study_description: str | None
    accession_number: str | None
    series_number: int | None
    series_description: str | None
    instance_number: int | None
    is_image: bool
    metadata: dict[str, Any]
    warnings: tuple[str, ...]


def parse_instance(data: bytes, *, check_pixel_data: bool = True) -> ParsedInstance:
    """Parse and check ``data`` (a PS3.10 file); :class:`DicomRejected` with the reason."""
    return parse_dataset(read_dataset(data), check_pixel_data=check_pixel_data)


def parse_dataset(dataset: Dataset, *, check_pixel_data: bool = True) -> ParsedInstance:
    """Check a data set :func:`read_dataset` returned; :class:`DicomRejected` with the reason."""
    transfer_syntax = _transfer_syntax(dataset)
    uids = {name: _uid(dataset, name) for name in _REQUIRED_UIDS}
    _check_type_1(dataset, uids["SOPClassUID"])
    is_image = any(tag in dataset for tag in PIXEL_DATA_TAGS)
    notes: list[str] = []
    if is_image and check_pixel_data:
        notes.extend(check_pixels(dataset))
    return ParsedInstance(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        modality=_text(dataset, "Modality"),
        body_part=_text(dataset, "BodyPartExamined"),
        view=_text(dataset, "ViewPosition"),
        laterality=_text(dataset, "ImageLaterality") or _text(dataset, "Laterality"),
        patient_id=_text(dataset, "PatientID"),
        patient_name=_text(dataset, "PatientName"),
        patient_birth_date=_text(dataset, "PatientBirthDate"),
        patient_age=_text(dataset, "PatientAge"),
        patient_sex=_text(dataset, "PatientSex"),
        study_date=_text(dataset, "StudyDate"),
        study_time=_text(dataset, "StudyTime"),
        study_description=_text(dataset, "StudyDescription"),
        accession_number=_text(dataset, "AccessionNumber"),
        series_number=_integer(dataset, "SeriesNumber"),
        series_description=_text(dataset, "SeriesDescription"),
        instance_number=_integer(dataset, "InstanceNumber"),
        is_image=is_image,
        metadata=_metadata(dataset),
        warnings=tuple(notes),
    )


def read_dataset(data: bytes) -> Dataset:
    """The data set of a PS3.10 file; never ``force=True`` (it would "read" anything)."""
    if data[:2] == b"\x1f\x8b":
        raise DicomRejected("A gzip-compressed file, not a DICOM PS3.10 file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = pydicom.dcmread(io.BytesIO(data), force=False)
        except InvalidDicomError as error:
            raise DicomRejected(
                "Not a DICOM PS3.10 file: the 128-byte preamble, the 'DICM' prefix or the "
                "File Meta Information is missing"
            ) from error
        except (ValueError, EOFError, OSError, KeyError, TypeError, gzip.BadGzipFile) as error:
            raise DicomRejected(
                f"The data set cannot be parsed ({type(error).__name__})"
            ) from error
    if any("End of file reached" in str(w.message) for w in caught):
        raise DicomRejected("The file is truncated: it ends inside an element or sequence")
    return dataset


def _transfer_syntax(dataset: Dataset) -> str:
    value = dataset.file_meta.get("TransferSyntaxUID") if dataset.file_meta else None
    if not value:
        raise DicomRejected("The File Meta Information has no Transfer Syntax UID (0002,0010)")
    uid = UID(str(value))
    if not uid.is_transfer_syntax:
        raise DicomRejected(
            "The Transfer Syntax UID is not a known transfer syntax",
            failure_reason=TRANSFER_SYNTAX_NOT_SUPPORTED,
        )
    return str(uid)


def _uid(dataset: Dataset, keyword: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = dataset.get(keyword)
    if not value:
        raise DicomRejected(
            f"The required attribute {keyword} is missing", failure_reason=DOES_NOT_MATCH_SOP_CLASS
        )
    uid = UID(str(value))
    if not uid.is_valid:
        raise DicomRejected(
            f"{keyword} is not a valid DICOM UID (digits and dots, at most 64 characters)",
            failure_reason=DOES_NOT_MATCH_SOP_CLASS,
        )
    return str(uid)


def _check_type_1(dataset: Dataset, sop_class: str) -> None:
    missing = [k for k in _TYPE_1_BY_SOP_CLASS.get(sop_class, ()) if not _text(dataset, k)]
    if missing:
        raise DicomRejected(
            f"The {UID(sop_class).name} IOD requires {', '.join(missing)} (type 1), "
            "which the data set lacks (is it truncated?)",
            failure_reason=DOES_NOT_MATCH_SOP_CLASS,
        )


def _text(dataset: Dataset, keyword: str) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = dataset.get(keyword)
        except (ValueError, TypeError):
            return None
    text = str(value).strip() if value is not None else ""
    return text or None


def _integer(dataset: Dataset, keyword: str) -> int | None:
    text = _text(dataset, keyword)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _metadata(dataset: Dataset) -> dict[str, Any]:
    """The DICOM JSON (PS3.18 F.2) of the data set without its pixel data."""
    header = Dataset()
    header.update({e.tag: e for e in dataset if e.keyword not in PIXEL_DATA_TAGS})
    header.TransferSyntaxUID = dataset.file_meta.TransferSyntaxUID
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return header.to_json_dict(bulk_data_threshold=10**9)
        except (ValueError, TypeError, AttributeError) as error:
            raise DicomRejected(
                f"The data set has values that cannot be encoded as DICOM JSON "
                f"({type(error).__name__})"
            ) from error
