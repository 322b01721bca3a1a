"""Imaging analysis jobs: one per study and model version (the idempotency key)."""

from __future__ import annotations

from fhir_ai.jobs.routing import ANALYZE_STUDY
from fhir_ai.jobs.task_resource import JobRequest

IMAGING_ANALYSIS = "imaging-analysis"


def analysis_key(study_uid: str, model: str, version: str) -> str:
    """The idempotency key of analysing ``study_uid`` with ``model`` ``version``."""
    return f"{IMAGING_ANALYSIS}/{study_uid}/{model}@{version}"


def analysis_request(
    study_id: str, study_uid: str, subject: str | None, model: str, version: str
) -> JobRequest:
    """The job that analyses ImagingStudy ``study_id`` with ``model``."""
    return JobRequest(
        job_type=IMAGING_ANALYSIS,
        task_name=ANALYZE_STUDY,
        focus=f"ImagingStudy/{study_id}",
        key=analysis_key(study_uid, model, version),
        subject=subject,
        parameters=(("model", model), ("model-version", version)),
    )
