"""Imaging tasks (queue ``imaging``): analyse a stored study with one model.

Arguments are a Task id only; the Task names the ImagingStudy (``focus``) and the model
(``input``). A redelivered job finds its Task finished and does nothing; a poison input
(no decodable image, no routed image) fails its Task once, with the reason, unretried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import shared_task

from fhir_ai.errors import NotAnalysable
from fhir_ai.fhir.references import split_reference
from fhir_ai.imaging.analysis import StudyAnalyzer
from fhir_ai.imaging.batching import BatchedModel
from fhir_ai.imaging.model.outputs import ImagingModel
from fhir_ai.imaging.report import result_bundle
from fhir_ai.imaging.routing import ModelRouter
from fhir_ai.imaging.study_records import StudyRecords, StudyRecordSettings
from fhir_ai.jobs.completion import JobResults
from fhir_ai.jobs.task_resource import JOB_KEYS, parameter
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import FileObjectStore
from workers.jobs import MAX_RETRIES, run_job
from workers.metrics import observe_inference
from workers.runtime import WORKER_BASE_URL, worker_runtime

logger = logging.getLogger("workers.imaging")


@dataclass(frozen=True, slots=True)
class ImagingRuntime:
    """The analyzer of a worker process."""

    analyzer: StudyAnalyzer


@cache
def loaded_model(name: str) -> ImagingModel:
    """The model ``name`` on this process's device, its predictions batched across the
    job threads of this worker (a per-process cache: loaded on first use, in the child).
    """
    import torch

    from fhir_ai.imaging.model.inference import LoadedModel

    settings = worker_runtime().settings
    if not torch.cuda.is_available():
        torch.set_num_threads(settings.worker_threads)
    return BatchedModel(
        LoadedModel.load(name),
        max_batch=settings.imaging_batch_size,
        max_wait_s=settings.imaging_batch_wait_ms / 1000,
        observe=lambda size, seconds: observe_inference(name, size, seconds),
    )


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
    return run_job(task, task_id, run_analysis, "analysis")


def run_analysis(job: dict[str, Any]) -> JobResults:
    """Analyse the job's study; its results, the DiagnosticReport the Task's output."""
    model = parameter(job, "model")
    focus = split_reference(job.get("focus", {}).get("reference", "ImagingStudy"))
    key = next(i["value"] for i in job["identifier"] if i.get("system") == JOB_KEYS)
    if not model or focus.resource_type != "ImagingStudy" or not focus.id:
        raise NotAnalysable("The Task names no ImagingStudy focus or no model input")
    result = imaging_runtime().analyzer.analyze(focus.id, model, key)
    return JobResults.of(result_bundle(result), "DiagnosticReport")


analyze_study_task = shared_task(
    name="workers.imaging.analyze_study", bind=True, acks_late=True, max_retries=MAX_RETRIES
)(analyze_study)
