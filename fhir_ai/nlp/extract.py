"""The entry points of the NLP worker: a document or a text in, a FHIR Bundle out.

- :func:`extract_for_resource` takes a DocumentReference or a DiagnosticReport (dict) and
  returns a **transaction** Bundle for the store (conditional creates: re-running the same
  document version with the same pipeline version creates nothing new).
- :func:`extract_text` takes plain text (the synchronous ``$extract``) and returns a
  **collection** Bundle of the same resources, nothing stored.

Both raise :mod:`fhir_ai.errors` errors for bad input (see :mod:`fhir_ai.nlp.text`). They
build the pipeline on first use in the process (about a second) and reuse it after.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fhir_ai.errors import InvalidResource
from fhir_ai.nlp.fhir_builder import PipelineInfo, SourceDocument, extraction_bundle
from fhir_ai.nlp.pipeline import PIPELINE_NAME, load_pipeline
from fhir_ai.nlp.text import FetchBinary, checked_text, resource_text


class NlpSettings(Protocol):
    """The settings the extraction reads (:class:`fhir_ai.settings.Settings` has them)."""

    @property
    def nlp_max_text_bytes(self) -> int: ...

    def terminology_path(self) -> Path: ...


def source_document(resource: dict[str, Any]) -> SourceDocument:
    """Reference, version, subject, encounter and date of a DocumentReference/DiagnosticReport."""
    kind, rid = resource.get("resourceType"), resource.get("id")
    if kind not in ("DocumentReference", "DiagnosticReport") or not rid:
        raise InvalidResource("extraction needs a stored DocumentReference or DiagnosticReport")
    if kind == "DocumentReference":
        context = resource.get("context") or {}
        encounters = context.get("encounter") or []
        encounter = encounters[0] if encounters else None
        date = resource.get("date") or (context.get("period") or {}).get("start")
        based_on: tuple[dict[str, Any], ...] = ()
    else:
        encounter = resource.get("encounter")
        date = resource.get("effectiveDateTime") or resource.get("issued")
        based_on = tuple(resource.get("basedOn") or ())
    return SourceDocument(
        reference=f"{kind}/{rid}",
        version=(resource.get("meta") or {}).get("versionId"),
        subject=resource.get("subject"),
        encounter=encounter,
        date=date,
        based_on=based_on,
    )


def extract_for_resource(
    resource: dict[str, Any],
    fetch_binary: FetchBinary,
    settings: NlpSettings,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The transaction Bundle of the mentions in a DocumentReference or DiagnosticReport.

    ``fetch_binary(url)`` returns the bytes an attachment ``url`` points to (for example the
    content of ``Binary/123``), or ``None`` when there is none.
    """
    source = source_document(resource)
    text = resource_text(resource, fetch_binary, settings.nlp_max_text_bytes)
    return _bundle(source, text, settings, now, "transaction")


def extract_text(
    text: str,
    settings: NlpSettings,
    *,
    subject: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The collection Bundle of the mentions in plain ``text`` (nothing is stored)."""
    checked = checked_text(text, settings.nlp_max_text_bytes)
    digest = hashlib.sha256(checked.encode("utf-8", errors="replace")).hexdigest()
    source = SourceDocument(None, None, subject, None, None, text_digest=digest)
    return _bundle(source, checked, settings, now, "collection")


def _bundle(
    source: SourceDocument,
    text: str,
    settings: NlpSettings,
    now: datetime | None,
    kind: Any,
) -> dict[str, Any]:
    pipeline = load_pipeline(settings.terminology_path())
    mentions = pipeline.mentions(text)
    info = PipelineInfo(PIPELINE_NAME, pipeline.version)
    moment = now or datetime.now(UTC)
    return extraction_bundle(source, mentions, info, pipeline.terminology, moment, kind)
