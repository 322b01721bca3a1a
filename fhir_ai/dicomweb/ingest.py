"""STOW-RS ingestion: check each instance, store its bytes once, index it, describe the
study as FHIR, and start its analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from fhir_ai.errors import DicomRejected, ServiceUnavailable
from fhir_ai.imaging import dicom_status
from fhir_ai.imaging.dicom_parse import ParsedInstance, parse_instance
from fhir_ai.imaging.study_records import StudyRecords
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import ObjectStore, content_key

logger = logging.getLogger("fhir_ai.dicomweb")


@dataclass(frozen=True, slots=True)
class InstanceOutcome:
    """What happened to one part of a STOW-RS request."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_instance_uid: str | None
    series_instance_uid: str | None = None
    failure_reason: int | None = None
    message: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def stored(self) -> bool:
        """True when the instance is stored (now or before)."""
        return self.failure_reason is None


@dataclass(slots=True)
class StowResult:
    """The outcome of every part, and the analysis Tasks the request started."""

    outcomes: list[InstanceOutcome] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    analysis_delayed: bool = False


class StowService:
    """Stores instances and keeps their FHIR ImagingStudy current."""

    def __init__(self, objects: ObjectStore, index: DicomIndex, records: StudyRecords) -> None:
        self.objects = objects
        self.index = index
        self.records = records

    def store(self, parts: Iterable[bytes], expected_study: str | None) -> StowResult:
        """Store each part (a PS3.10 file); refuse bad ones with their reason."""
        result = StowResult()
        changed: dict[str, None] = {}
        for data in parts:
            outcome, new = self._store_one(data, expected_study)
            result.outcomes.append(outcome)
            if new and outcome.study_instance_uid:
                changed[outcome.study_instance_uid] = None
        for study_uid in changed:
            try:
                result.tasks.extend(self.records.refresh(study_uid))
            except ServiceUnavailable:
                result.analysis_delayed = True
        return result

    def _store_one(self, data: bytes, expected_study: str | None) -> tuple[InstanceOutcome, bool]:
        try:
            parsed = parse_instance(data)
        except DicomRejected as error:
            return InstanceOutcome(
                None, None, None, failure_reason=error.failure_reason, message=error.message
            ), False
        outcome = _outcome(parsed)
        if expected_study and parsed.study_instance_uid != expected_study:
            return _failed(
                outcome,
                dicom_status.DOES_NOT_MATCH_SOP_CLASS,
                "The StudyInstanceUID differs from the study in the request URL",
            ), False
        existing = self.index.stored_key(parsed.sop_instance_uid)
        if existing is None:
            key = self.objects.put(data)
            if self.index.add(_index_row(parsed, key, len(data))):
                return outcome, True
            existing = self.index.stored_key(parsed.sop_instance_uid)
        if existing == content_key(data):
            if self.objects.path(existing) is None:  # indexed but its bytes are lost: restore
                self.objects.put(data)
            return outcome, False  # the same bytes again: nothing changes
        return _failed(
            outcome,
            dicom_status.DUPLICATE_SOP_INSTANCE,
            "An instance with this SOPInstanceUID is already stored with other content",
        ), False


def _outcome(parsed: ParsedInstance) -> InstanceOutcome:
    return InstanceOutcome(
        parsed.sop_class_uid,
        parsed.sop_instance_uid,
        parsed.study_instance_uid,
        parsed.series_instance_uid,
        warnings=parsed.warnings,
    )


def _failed(outcome: InstanceOutcome, reason: int, message: str) -> InstanceOutcome:
    return InstanceOutcome(
        outcome.sop_class_uid,
        outcome.sop_instance_uid,
        outcome.study_instance_uid,
        outcome.series_instance_uid,
        failure_reason=reason,
        message=message,
    )


def _index_row(parsed: ParsedInstance, key: str, size: int) -> dict[str, object]:
    return {
        "sop_instance_uid": parsed.sop_instance_uid,
        "study_instance_uid": parsed.study_instance_uid,
        "series_instance_uid": parsed.series_instance_uid,
        "sop_class_uid": parsed.sop_class_uid,
        "transfer_syntax_uid": parsed.transfer_syntax_uid,
        "modality": parsed.modality,
        "patient_id": parsed.patient_id,
        "study_date": parsed.study_date,
        "instance_number": parsed.instance_number,
        "object_key": key,
        "size_bytes": size,
        "metadata": parsed.metadata,
    }
