"""NLP extraction jobs, submitted by the web process (no spaCy here).

One job per document version and pipeline version: the key changes when either does.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from fhir_ai.jobs.routing import EXTRACT_DOCUMENT
from fhir_ai.jobs.task_resource import JobRequest
from fhir_ai.nlp.terminology import load_terminology

NLP_EXTRACTION = "nlp-extraction"
EXTRACTABLE = ("DocumentReference", "DiagnosticReport")


def pipeline_key(terminology_dir: Path | None) -> str:
    """What identifies the pipeline in job keys: code, terminology and medspaCy versions."""
    terminology = load_terminology(terminology_dir)
    return f"fhir-ai-{version('fhir-ai')}+terminology-{terminology.version}"


def extraction_request(
    reference: str, version_id: str, subject: str | None, pipeline: str
) -> JobRequest:
    """The job that extracts findings from ``reference`` (``DocumentReference/<id>``)."""
    return JobRequest(
        job_type=NLP_EXTRACTION,
        task_name=EXTRACT_DOCUMENT,
        focus=f"{reference}/_history/{version_id}",
        key=f"{NLP_EXTRACTION}/{reference}/_history/{version_id}/{pipeline}",
        subject=subject,
        parameters=(("pipeline", pipeline),),
    )
