"""The web side of NLP: the DocumentReference trigger and the ``$extract`` operations.

The web process never runs spaCy: document extraction is a job on the ``nlp`` queue; the
synchronous ``POST /fhir/$extract`` sends the text to an ``nlp`` worker and waits.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, request

from fhir_ai.errors import (
    FhirAiError,
    InvalidRequest,
    InvalidResource,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from fhir_ai.fhir import http
from fhir_ai.fhir.operations import CreatedHook, Operation
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.jobs.queue import JobQueue
from fhir_ai.jobs.routing import EXTRACT_TEXT
from fhir_ai.jobs.service import JobService
from fhir_ai.nlp.jobs import EXTRACTABLE, extraction_request, pipeline_key
from fhir_ai.settings import Settings
from fhir_ai.store.repository import ResourceStore
from fhir_ai.urls import public_url

logger = logging.getLogger("fhir_ai.nlp")
SYNC_TIMEOUT_S = 30.0


class NlpWeb:
    """Submits extraction jobs; answers ``$extract``."""

    def __init__(
        self, settings: Settings, store: ResourceStore, jobs: JobService, queue: JobQueue
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.queue = queue

    def submit(self, resource_type: str, resource_id: str) -> tuple[str, str]:
        """Queue the extraction of the current version; (Task id, Task status)."""
        with self.store.session(read_only=True) as session:
            stored = session.read(resource_type, resource_id)
        subject = (stored.content or {}).get("subject", {}).get("reference")
        pipeline = pipeline_key(self.settings.terminology_path())
        reference = f"{resource_type}/{resource_id}"
        job = self.jobs.submit(
            extraction_request(reference, str(stored.version_id), subject, pipeline)
        )
        return job.task_id, job.status

    def on_created(self, resource_type: str, resource_id: str, version: str) -> None:
        """Start the extraction of a new DocumentReference (when configured)."""
        if resource_type != "DocumentReference" or not self.settings.extract_on_create:
            return
        try:
            self.submit(resource_type, resource_id)
        except ServiceUnavailable:
            logger.warning("extraction not queued yet", extra={"resource": resource_type})

    def extract_document(self, resource_type: str, resource_id: str) -> Response:
        """``POST [type]/[id]/$extract``: 202 with the Task in Content-Location."""
        task_id, status = self.submit(resource_type, resource_id)
        base = public_url(self.settings, "/fhir")
        body = operation_outcome(
            "informational", f"Extraction {status}: Task/{task_id}", "information"
        )
        response = http.json_response(body, 202, http.FHIR_JSON)
        response.headers["Content-Location"] = f"{base}/Task/{task_id}"
        return response

    def extract_text(self, resource_type: str) -> Response:
        """``POST /$extract`` with a Parameters ``text``: the result Bundle, nothing stored."""
        text, subject = _parameters(http.parse_json_body(request))
        if len(text.encode("utf-8")) > self.settings.nlp_max_text_bytes:
            limit = self.settings.nlp_max_text_bytes
            raise PayloadTooLarge(f"The text exceeds {limit} bytes (FHIR_AI_NLP_MAX_TEXT_BYTES)")
        answer = self.queue.call(EXTRACT_TEXT, [text, subject], SYNC_TIMEOUT_S)
        if not isinstance(answer, dict) or "bundle" not in answer:
            raise _worker_error(answer)
        return http.json_response(answer["bundle"], 200, http.FHIR_JSON)

    def operations(self) -> tuple[Operation, ...]:
        """``$extract`` on each extractable type and on the system."""
        per_type = tuple(
            Operation(
                name=f"{kind.lower()}_extract",
                rule=f"/{kind}/<resource_id>/$extract",
                view=lambda resource_type, resource_id: self.extract_document(
                    resource_type, resource_id
                ),
                resource_type=kind,
                interaction="read",
            )
            for kind in EXTRACTABLE
        )
        system = Operation(
            name="system_extract",
            rule="/$extract",
            view=self.extract_text,
            resource_type="Observation",
            interaction="read",
            system_level=True,
        )
        return (*per_type, system)

    def hooks(self) -> tuple[CreatedHook, ...]:
        """The created-resource hooks to register."""
        return (self.on_created,)


def _parameters(body: Any) -> tuple[str, str | None]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("$extract takes a Parameters resource with a 'text' parameter")
    values = {p.get("name"): p for p in body.get("parameter", []) if isinstance(p, dict)}
    text = values.get("text", {}).get("valueString")
    if not isinstance(text, str):
        raise InvalidRequest("$extract needs a 'text' parameter (valueString)", expression="text")
    subject = values.get("subject", {}).get("valueReference", {}).get("reference")
    return text, subject if isinstance(subject, str) else None


_ERRORS: dict[int, type[FhirAiError]] = {
    400: InvalidRequest,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidResource,
}


def _worker_error(answer: Any) -> FhirAiError:
    """The error the NLP worker reported for the text, as our own error class."""
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    kind = _ERRORS.get(int(error.get("status", 500)), FhirAiError)
    return kind(str(error.get("message", "The NLP worker could not extract the text")))
