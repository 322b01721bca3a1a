"""The web side of imaging: the DICOMweb blueprint and the ``$analyze`` operation."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import Blueprint, Response
from sqlalchemy import Engine

from fhir_ai.dicomweb.blueprint import create_dicomweb_blueprint
from fhir_ai.dicomweb.ingest import StowService
from fhir_ai.errors import NotAnalysable
from fhir_ai.fhir import http
from fhir_ai.fhir.operations import Operation
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.fhir.service import FhirService
from fhir_ai.imaging.routing import ModelRouter
from fhir_ai.imaging.study_records import StudyRecords, StudyRecordSettings
from fhir_ai.jobs.service import JobService
from fhir_ai.settings import Settings
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import FileObjectStore
from fhir_ai.store.repository import ResourceStore
from fhir_ai.urls import public_url


@dataclass(frozen=True, slots=True)
class ImagingWeb:
    """What the app mounts for imaging."""

    blueprint: Blueprint
    operations: tuple[Operation, ...]


def build_imaging_web(
    settings: Settings,
    engine: Engine,
    store: ResourceStore,
    fhir: FhirService,
    jobs: JobService | None,
) -> ImagingWeb:
    """The DICOMweb blueprint and ``ImagingStudy/{id}/$analyze``."""
    index = DicomIndex(engine)
    objects = FileObjectStore(settings.objects_dir())
    records = StudyRecords(
        index,
        store,
        fhir,
        jobs,
        ModelRouter.load(settings.terminology_path()),
        StudyRecordSettings(
            wado_rs_base_url=lambda: public_url(settings, "/dicomweb"),
            patient_id_system=settings.dicom_patient_id_system,
            patient_id_issuers=settings.dicom_patient_id_issuers,
            terminology_dir=settings.terminology_path(),
            analyze_on_store=settings.analyze_on_store,
            timezone=ZoneInfo(settings.dicom_timezone) if settings.dicom_timezone else None,
        ),
    )
    blueprint = create_dicomweb_blueprint(
        StowService(objects, index, records), index, objects, settings
    )

    def analyze(resource_type: str, resource_id: str) -> Response:
        submitted = records.analyze(resource_id)
        if not submitted:
            raise NotAnalysable(
                f"No model applies to the images of ImagingStudy/{resource_id} "
                "(see terminology/imaging/model-routing.json)"
            )
        base = public_url(settings, "/fhir")
        tasks = ", ".join(f"Task/{job.task_id} ({job.status})" for job in submitted)
        body = operation_outcome("informational", f"Analysis accepted: {tasks}", "information")
        response = http.json_response(body, 202, http.FHIR_JSON)
        response.headers["Content-Location"] = f"{base}/Task/{submitted[0].task_id}"
        return response

    operation = Operation(
        name="imaging_study_analyze",
        rule="/ImagingStudy/<resource_id>/$analyze",
        view=analyze,
        resource_type="ImagingStudy",
        interaction="read",
    )
    return ImagingWeb(blueprint, (operation,))
