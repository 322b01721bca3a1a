"""Concept mentions as FHIR: a pure builder (no I/O, no spaCy), following :mod:`nlp_results`.

One extraction DiagnosticReport per document version and pipeline version, one result
Observation per mention, the pipeline's Device and a Provenance. As a transaction every entry
is a conditional create on a deterministic identifier, so re-running the same document version
with the same pipeline writes nothing new.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fhir_ai.fhir.ai_results import ai_asserted_meta
from fhir_ai.fhir.nlp_results import (
    ASSERTION,
    DERIVED_FROM,
    EVIDENCE,
    EXTRACTION_IDS,
    FLAGS,
    NLP_CONCEPTS,
    NLP_FINDING,
    NLP_PIPELINE,
    NOTE_EXTRACTION,
    PIPELINE_IDS,
    SIZE_MM,
)  # fmt: skip
from fhir_ai.fhir.search.dates import format_instant
from fhir_ai.nlp.mentions import Mention
from fhir_ai.nlp.terminology import Terminology

PROVENANCE_TAG = "https://fhir-ai.org/fhir/CodeSystem/nlp-extraction-run"
UCUM = "http://unitsofmeasure.org"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
ASSEMBLER = {
    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
    "code": "assembler",
}
BundleType = Literal["transaction", "collection"]


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """What the builder needs to know of the analysed document."""

    reference: str | None  # "DocumentReference/123"; None for plain text
    version: str | None  # meta.versionId
    subject: dict[str, Any] | None  # Reference to the Patient
    encounter: dict[str, Any] | None
    date: str | None  # the note's date (dateTime)
    based_on: tuple[dict[str, Any], ...] = ()
    text_digest: str = ""  # identifies plain text when there is no reference

    @property
    def versioned_reference(self) -> str | None:
        """``Type/id/_history/v`` when the version is known."""
        if self.reference and self.version:
            return f"{self.reference}/_history/{self.version}"
        return self.reference


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    """The pipeline that produced the mentions."""

    name: str
    version: str


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:40]


def _urn(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}"


def _coding(pair: tuple[str, str], display: str | None = None) -> dict[str, str]:
    coding = {"system": pair[0], "code": pair[1]}
    return {**coding, "display": display} if display else coding


def _common(source: SourceDocument, date: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"effectiveDateTime": source.date or date}
    if source.subject:
        fields["subject"] = source.subject
    if source.encounter:
        fields["encounter"] = source.encounter
    return fields


def _evidence(mention: Mention) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "start", "valueInteger": mention.start},
        {"url": "end", "valueInteger": mention.end},
        {"url": "text", "valueString": mention.text},
        {"url": "sentenceStart", "valueInteger": mention.sentence_start},
    ]
    if mention.section:
        parts.append({"url": "section", "valueCode": mention.section})
    return {"url": EVIDENCE, "extension": parts}


def _components(mention: Mention) -> list[dict[str, Any]]:
    components = [
        {"code": {"coding": [_coding((ASSERTION, flag))]}, "valueBoolean": getattr(mention, flag)}
        for flag in FLAGS
    ]
    if mention.size_mm is not None:
        quantity = {"value": mention.size_mm, "unit": "mm", "system": UCUM, "code": "mm"}
        components.append({"code": {"coding": [_coding(SIZE_MM)]}, "valueQuantity": quantity})
    return components


def observation(
    mention: Mention, source: SourceDocument, terminology: Terminology, device_urn: str, date: str
) -> dict[str, Any]:
    """The result Observation of one mention (the :mod:`nlp_results` contract)."""
    concept = terminology.by_id.get(mention.concept)
    codings = (
        concept.codings(NLP_CONCEPTS) if concept else [_coding((NLP_CONCEPTS, mention.concept))]
    )
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": ai_asserted_meta(),
        "extension": [_evidence(mention)],
        "status": "preliminary",
        "category": [{"coding": [_coding(NLP_FINDING)]}],
        "code": {"coding": codings, "text": concept.display if concept else mention.text},
        **_common(source, date),
        "valueCodeableConcept": {"coding": [_coding((ASSERTION, mention.assertion))]},
        "component": _components(mention),
        "note": [{"text": mention.sentence}],
        "device": {"reference": device_urn},
    }
    if source.reference:
        resource["derivedFrom"] = [{"reference": source.reference}]
    return resource


def _entry(
    urn: str, resource: dict[str, Any], kind: BundleType, criteria: str | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": urn, "resource": resource}
    if kind == "transaction":
        request = {"method": "POST", "url": resource["resourceType"]}
        entry["request"] = {**request, "ifNoneExist": criteria} if criteria else request
    return entry


def _identified(resource: dict[str, Any], system: str, value: str) -> str:
    resource["identifier"] = [{"system": system, "value": value}]
    return f"identifier={system}|{value}"


def device(pipeline: PipelineInfo) -> tuple[str, dict[str, Any], str]:
    """``(urn, Device, criteria)`` of the pipeline version."""
    key = _key("device", pipeline.name, pipeline.version)
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "status": "active",
        "deviceName": [{"name": pipeline.name, "type": "user-friendly-name"}],
        "type": {"coding": [_coding(NLP_PIPELINE, "Clinical NLP pipeline")]},
        "version": [{"value": pipeline.version}],
    }
    criteria = _identified(resource, PIPELINE_IDS, key)
    return _urn(key), resource, criteria


def extraction_bundle(
    source: SourceDocument,
    mentions: Sequence[Mention],
    pipeline: PipelineInfo,
    terminology: Terminology,
    now: datetime,
    kind: BundleType = "transaction",
) -> dict[str, Any]:
    """The Bundle (report, Observations, Device, Provenance) of one document's mentions."""
    date = format_instant(now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now)
    run = _key(source.reference or source.text_digest, source.version, pipeline.version)
    device_urn, device_resource, device_criteria = device(pipeline)
    entries = [_entry(device_urn, device_resource, kind, device_criteria)]
    results = []
    for mention in mentions:
        resource = observation(mention, source, terminology, device_urn, date)
        key = _key(run, mention.concept, mention.start, mention.end)
        criteria = _identified(resource, EXTRACTION_IDS, key)
        entries.append(_entry(_urn(key), resource, kind, criteria))
        results.append({"reference": _urn(key)})
    report = _report(source, results, len(mentions), date)
    report_criteria = _identified(report, EXTRACTION_IDS, run)
    entries.insert(1, _entry(_urn(run), report, kind, report_criteria))
    provenance = _provenance(
        source, [_urn(run), *(r["reference"] for r in results)], device_urn, date, run
    )
    entries.append(
        _entry(_urn(f"provenance|{run}"), provenance, kind, f"_tag={PROVENANCE_TAG}|{run}")
    )
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _report(
    source: SourceDocument, results: list[dict[str, str]], count: int, date: str
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "meta": ai_asserted_meta(),
        "status": "preliminary",
        "code": {"coding": [_coding(NOTE_EXTRACTION, "Clinical note concept extraction")]},
        **_common(source, date),
        "issued": date,
        "result": results,
        "conclusion": f"{count} concept mention(s) found by automated extraction; not reviewed.",
    }
    if source.based_on:
        report["basedOn"] = list(source.based_on)
    if source.reference:
        versioned = source.versioned_reference
        report["extension"] = [{"url": DERIVED_FROM, "valueReference": {"reference": versioned}}]
    return report


def _provenance(
    source: SourceDocument, targets: list[str], device_urn: str, date: str, run: str
) -> dict[str, Any]:
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": PROVENANCE_TAG, "code": run}]},
        "target": [{"reference": t} for t in targets],
        "recorded": date,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE"}]},
        "agent": [{"type": {"coding": [ASSEMBLER]}, "who": {"reference": device_urn}}],
    }
    if source.versioned_reference:
        provenance["entity"] = [
            {"role": "source", "what": {"reference": source.versioned_reference}}
        ]
    return provenance
