"""Imaging tasks (queue ``imaging``): analyse a stored study with one model.

Arguments are a Task id only; the Task names the ImagingStudy (``focus``) and the model
(``input``). A redelivered job finds its Task finished and does nothing; a poison input
(no decodable image, no routed image) fails its Task once, with the reason, unretried.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from fhir_ai.errors import DicomRejected, NotAnalysable, NotFound
from fhir_ai.fhir.references import split_reference
from fhir_ai.imaging.analysis import ImagingModel, StudyAnalyzer
from fhir_ai.imaging.report import result_bundle
from fhir_ai.imaging.routing import ModelRouter
from fhir_ai.imaging.study_records import StudyRecords, StudyRecordSettings
from fhir_ai.jobs.task_resource import JOB_KEYS, parameter
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import FileObjectStore
from workers.runtime import WORKER_BASE_URL, worker_runtime

logger = logging.getLogger("workers.imaging")
RETRY_BACKOFF_S = 10
MAX_RETRIES = 5


@dataclass(frozen=True, slots=True)
class ImagingRuntime:
    """The analyzer of a worker process."""

    analyzer: StudyAnalyzer


@cache
def loaded_model(name: str) -> ImagingModel:
    """The model ``name`` on this process's device (a per-process cache)."""
    import torch
    from fhir_ai.imaging.model.inference import LoadedModel

    if not torch.cuda.is_available():
        torch.set_num_threads(worker_runtime().settings.worker_threads)
    return LoadedModel.load(name)


@cache
def imaging_runtime() -> ImagingRuntime:
    """This process's imaging pipeline (a per-process cache)."""
    runtime = worker_runtime()
    settings = runtime.settings
    index = DicomIndex(runtime.engine)
    router = ModelRouter.load(settings.terminology_path())
    records = StudyRecords(
        index,
        runtime.store,
        runtime.fhir,
        None,
        router,
        StudyRecordSettings(
            wado_rs_base_url=lambda: WORKER_BASE_URL,
            patient_id_system=settings.dicom_patient_id_system,
            terminology_dir=settings.terminology_path(),
            analyze_on_store=False,
        ),
    )
    analyzer = StudyAnalyzer(
        runtime.store,
        index,
        FileObjectStore(settings.objects_dir()),
        records,
        loaded_model,
        router.report_code,
    )
    return ImagingRuntime(analyzer)


def analyze_study(task: Any, task_id: str) -> dict[str, Any]:
    """Run the analysis a Task describes and record its outcome on the Task."""
    runtime = worker_runtime()
    job = runtime.jobs.start(task_id, worker=task.request.hostname or socket.gethostname())
    if job is None:
        return {"task": task_id, "status": "already-finished"}
    try:
        report = run_analysis(job)
    except (DicomRejected, NotAnalysable, NotFound) as error:
        runtime.jobs.fail(task_id, error.message, error.issue_code)
        return {"task": task_id, "status": "failed"}
    except SoftTimeLimitExceeded:
        runtime.jobs.fail(task_id, "The analysis exceeded its time limit", "timeout")
        return {"task": task_id, "status": "failed"}
    except OperationalError as error:  # the database is away: try again later
        if task.request.retries >= MAX_RETRIES:
            runtime.jobs.fail(task_id, "The database stayed unavailable", "transient")
            raise
        raise task.retry(exc=error, countdown=RETRY_BACKOFF_S * 2**task.request.retries) from error
    runtime.jobs.complete(task_id, [report])
    return {"task": task_id, "status": "completed", "report": report}


def run_analysis(job: dict[str, Any]) -> str:
    """Analyse the job's study and store its results; the DiagnosticReport reference."""
    model = parameter(job, "model")
    focus = split_reference(job.get("focus", {}).get("reference", "ImagingStudy"))
    key = next(i["value"] for i in job["identifier"] if i.get("system") == JOB_KEYS)
    if not model or focus.resource_type != "ImagingStudy" or not focus.id:
        raise NotAnalysable("The Task names no ImagingStudy focus or no model input")
    result = imaging_runtime().analyzer.analyze(focus.id, model, key)
    written = worker_runtime().write(result_bundle(result))
    return next(ref for ref in written if ref.startswith("DiagnosticReport/"))


analyze_study_task = shared_task(
    name="workers.imaging.analyze_study", bind=True, acks_late=True, max_retries=MAX_RETRIES
)(analyze_study)
