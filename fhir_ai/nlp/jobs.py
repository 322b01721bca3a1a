"""NLP extraction jobs, submitted by the web process (no spaCy here).

One job per document version and pipeline version: the key changes when either does.
"""

from __future__ import annotations

from pathlib import Path

from fhir_ai.jobs.routing import EXTRACT_DOCUMENT
from fhir_ai.jobs.task_resource import JobRequest
from fhir_ai.nlp.terminology import load_terminology, pipeline_version

NLP_EXTRACTION = "nlp-extraction"
EXTRACTABLE = ("DocumentReference", "DiagnosticReport")


def pipeline_key(terminology_dir: Path) -> str:
    """The pipeline part of job keys: its version (code, terminology and medspaCy) as a token.

    ``fhir-ai 0.1.0; terminology 1; medspacy 1.3.1`` gives
    ``fhir-ai-0.1.0+terminology-1+medspacy-1.3.1`` (no spaces for identifier searches).
    """
    return pipeline_version(load_terminology(terminology_dir)).replace("; ", "+").replace(" ", "-")


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
