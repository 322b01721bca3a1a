"""NLP tasks (queue ``nlp``): extract coded findings from a document, or from plain text.

``extract_document`` takes a Task id (the Task names the document version); a redelivered
job finds its Task finished, and the extraction Bundle's conditional creates write nothing
twice. Bad input (empty, too large, binary, bad encoding) fails the Task once, unretried.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from celery import shared_task

from fhir_ai.errors import FhirAiError, NotFound
from fhir_ai.fhir.references import split_reference
from fhir_ai.jobs.completion import JobResults
from workers.jobs import MAX_RETRIES, run_job
from workers.runtime import worker_runtime

logger = logging.getLogger("workers.nlp")


def extract_document(task: Any, task_id: str) -> dict[str, Any]:
    """Run the extraction a Task describes and record its outcome on the Task."""
    return run_job(task, task_id, run_extraction, "extraction")


def run_extraction(job: dict[str, Any]) -> JobResults:
    """Extract from the Task's document version; the results, the extraction
    DiagnosticReport the Task's output."""
    from fhir_ai.nlp.extract import extract_for_resource

    runtime = worker_runtime()
    kind, resource_id, version = split_reference(job["focus"]["reference"])
    with runtime.store.session(read_only=True) as session:
        stored = session.vread(kind, resource_id, int(version)) if version else None
        stored = stored or session.read(kind, resource_id)
    if stored.content is None:
        raise NotFound(f"{kind}/{resource_id} is deleted")
    bundle = extract_for_resource(stored.content, _binary_reader(), runtime.settings)
    return JobResults.of(bundle, "DiagnosticReport")


def extract_text(task: Any, text: str, subject: str | None) -> dict[str, Any]:
    """The collection Bundle of plain text (the synchronous ``$extract``), or an error."""
    from fhir_ai.nlp.extract import extract_text as extract

    try:
        reference = {"reference": subject} if subject else None
        return {"bundle": extract(text, worker_runtime().settings, subject=reference)}
    except FhirAiError as error:
        status, code = error.http_status, error.issue_code
        return {"error": {"status": status, "code": code, "message": error.message}}


def _binary_reader() -> Any:
    """Reads ``Binary/<id>`` attachments from the store (None when absent)."""
    runtime = worker_runtime()

    def read(url: str) -> bytes | None:
        parts = url.rstrip("/").split("/")
        if len(parts) < 2 or parts[-2] != "Binary":
            return None
        try:
            with runtime.store.session(read_only=True) as session:
                content = session.read("Binary", parts[-1]).content or {}
        except (NotFound, FhirAiError):
            return None
        data = content.get("data")
        return base64.b64decode(data) if isinstance(data, str) else None

    return read


extract_document_task = shared_task(
    name="workers.nlp.extract_document", bind=True, acks_late=True, max_retries=MAX_RETRIES
)(extract_document)
extract_text_task = shared_task(name="workers.nlp.extract_text", bind=True)(extract_text)
