"""Keeping the FHIR side of a stored study current: Endpoint, Patient, ImagingStudy, and
the analysis jobs its images route to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from fhir_ai.errors import NotFound
from fhir_ai.fhir.service import FhirService
from fhir_ai.imaging import imaging_study as fhir_study
from fhir_ai.imaging.dicom_json import text
from fhir_ai.imaging.jobs import analysis_request
from fhir_ai.imaging.model.card import load_card
from fhir_ai.imaging.routing import ModelRouter, body_site, patient_age_years
from fhir_ai.jobs.service import JobService, SubmittedJob
from fhir_ai.store.dicom import DicomIndex, StoredInstance
from fhir_ai.store.repository import ResourceStore, StoreSession

logger = logging.getLogger("fhir_ai.imaging")
_LOCAL_BASE = "http://localhost/fhir"


@dataclass(frozen=True, slots=True)
class StudyRecordSettings:
    """What the records need from the settings."""

    wado_rs_base_url: Callable[[], str]
    patient_id_system: str
    terminology_dir: Path
    analyze_on_store: bool
    #: Where the modalities' local DICOM times are (for instances without a UTC offset).
    timezone: ZoneInfo | None = None
    #: Issuer of Patient ID -> the identifier system of the PatientIDs it issues.
    patient_id_issuers: Mapping[str, str] = field(default_factory=dict)


class StudyRecords:
    """Writes the FHIR resources of stored studies and submits their analyses."""

    def __init__(
        self,
        index: DicomIndex,
        store: ResourceStore,
        fhir: FhirService,
        jobs: JobService | None,
        router: ModelRouter,
        config: StudyRecordSettings,
    ) -> None:
        self.index = index
        self.store = store
        self.fhir = fhir
        self.jobs = jobs
        self.router = router
        self.config = config

    def refresh(self, study_uid: str) -> list[str]:
        """Rewrite the study's ImagingStudy; queue its analyses when configured (Task ids)."""
        instances = self.index.instances(study_uid)
        with self.store.session() as session:
            session.lock(f"imaging-study|{study_uid}")
            study_id, subject = self._write_study(session, study_uid, instances)
        if not self.config.analyze_on_store:
            return []
        return [job.task_id for job in self._submit(study_id, study_uid, subject, instances)]

    def analyze(self, study_id: str) -> list[SubmittedJob]:
        """Submit the analyses of ImagingStudy ``study_id`` (the ``$analyze`` operation)."""
        with self.store.session(read_only=True) as session:
            study = session.read("ImagingStudy", study_id).content or {}
        uid = next(
            (i["value"].removeprefix("urn:oid:") for i in study.get("identifier", [])
             if i.get("system") == fhir_study.DICOM_UID),
            None,
        )  # fmt: skip
        instances = self.index.instances(uid) if uid else []
        if not uid or not instances:
            raise NotFound(f"ImagingStudy/{study_id} has no instances stored on this server")
        subject = study.get("subject", {}).get("reference")
        return self._submit(study_id, uid, subject, instances)

    def routes(self, instances: list[StoredInstance]) -> dict[str, list[StoredInstance]]:
        """The instances each model analyses."""
        routed: dict[str, list[StoredInstance]] = {}
        for instance in instances:
            route = self.router.route(
                instance.sop_class_uid,
                instance.modality,
                text(instance.metadata, "BodyPartExamined"),
                text(instance.metadata, "ViewPosition"),
                is_image="00280010" in instance.metadata,
            )
            if route.model:
                routed.setdefault(route.model, []).append(instance)
        return routed

    def population_caution(self, model: str, instance: StoredInstance) -> str | None:
        """Why ``model``'s result may not apply to the patient of ``instance`` (its age)."""
        metadata = instance.metadata
        age = patient_age_years(
            text(metadata, "PatientAge"),
            text(metadata, "PatientBirthDate"),
            text(metadata, "StudyDate"),
        )
        return self.router.population_caution(model, age)

    def _submit(
        self, study_id: str, study_uid: str, subject: str | None, instances: list[StoredInstance]
    ) -> list[SubmittedJob]:
        if self.jobs is None:
            return []
        submitted = []
        for model in self.routes(instances):
            version = load_card(model).version
            request = analysis_request(study_id, study_uid, subject, model, version)
            submitted.append(self.jobs.submit(request))
        return submitted

    def _write_study(
        self, session: StoreSession, study_uid: str, instances: list[StoredInstance]
    ) -> tuple[str, str]:
        endpoint = self._endpoint(session)
        subject = self._patient(session, instances[0], study_uid)
        resource = fhir_study.imaging_study(
            study_uid,
            instances,
            subject,
            endpoint,
            lambda part: body_site(self.config.terminology_dir, part),
            self.config.timezone,
        )
        identifier = fhir_study.study_identifier(study_uid)
        criteria = f"identifier={identifier['system']}|{identifier['value']}"
        written = self.fhir.conditional_update(session, resource, criteria, _LOCAL_BASE)
        return written.stored.id, subject

    def _endpoint(self, session: StoreSession) -> str:
        endpoint = fhir_study.wado_endpoint(self.config.wado_rs_base_url())
        criteria = f"identifier={fhir_study.ENDPOINT_IDENTIFIER}|{fhir_study.WADO_RS_ENDPOINT_ID}"
        self.fhir.lock_criteria(session, "Endpoint", criteria)  # two first studies at once
        found = self.fhir.matching_ids(session, "Endpoint", criteria, _LOCAL_BASE)
        if found:
            return f"Endpoint/{found[0]}"
        return f"Endpoint/{session.create(endpoint).id}"

    def _patient(self, session: StoreSession, first: StoredInstance, study_uid: str) -> str:
        """The Patient whose identifier is the PatientID in the system of its issuer.

        Only that system is searched: the same PatientID from another issuer is another
        patient, so a study is never linked across identifier systems (a new Patient is
        made instead, for the hospital's MPI to merge).
        """
        patient_id = text(first.metadata, "PatientID") or f"unknown-{study_uid}"
        issuer = text(first.metadata, "IssuerOfPatientID")
        system = self.config.patient_id_issuers.get(issuer or "", self.config.patient_id_system)
        session.lock(f"patient|{system}|{patient_id}")
        found = self.fhir.matching_ids(
            session, "Patient", f"identifier={system}|{patient_id}", _LOCAL_BASE
        )
        if len(found) == 1:
            return f"Patient/{found[0]}"
        metadata = {**first.metadata, "00100020": {"vr": "LO", "Value": [patient_id]}}
        return f"Patient/{session.create(fhir_study.patient_from_dicom(metadata, system)).id}"
