"""The FHIR results of one analysis, as a transaction Bundle (pure; no torch).

DiagnosticReport (preliminary, RAD) -> result Observation (calibrated probability,
POS/NEG at the model card's threshold) + presentedForm heatmap (a Binary), a Device for
the model and a Provenance (agent: the Device; entity: the ImagingStudy). Every entry is a
conditional create on a tag derived from the job key, so a redelivered job writes nothing.
See :mod:`fhir_ai.fhir.ai_results` for the contract the CDS services read.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from fhir_ai.fhir.ai_results import INTERPRETATION, ai_asserted_meta
from fhir_ai.imaging.model.card import ModelCard

RESULT_KEYS: Final = "https://fhir-ai.org/fhir/CodeSystem/result-key"
DEVICE_IDS: Final = "https://fhir-ai.org/fhir/NamingSystem/model"
DIAGNOSTIC_SERVICE: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM: Final = "http://unitsofmeasure.org"
DEVICE_TYPE: Final = {
    "system": "http://snomed.info/sct",
    "code": "706689003",
    "display": "Application program software",
}


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What the model found in a study."""

    key: str  # the job's idempotency key
    study_reference: dict[str, Any]  # {"reference": "ImagingStudy/<id>"} or by identifier
    study: dict[str, Any]
    card: ModelCard
    probability: float
    instance_uid: str  # the image the probability (and heatmap) comes from
    heatmap_png: bytes
    report_code: dict[str, Any]  # CodeableConcept of the imaging procedure
    #: Why the result may not apply to this patient (outside the training population).
    cautions: tuple[str, ...] = ()

    @property
    def positive(self) -> bool:
        """At or above the card's decision threshold."""
        return self.probability >= self.card.threshold.value


def result_bundle(result: AnalysisResult) -> dict[str, Any]:
    """The transaction Bundle that stores ``result`` exactly once."""
    ids = {part: f"urn:uuid:{_uuid(result.key, part)}" for part in _PARTS}
    entries = [
        _entry(ids["device"], _device(result), f"identifier={DEVICE_IDS}|{result.card.display}"),
        _tagged(result, ids, "heatmap", _binary(result)),
        _tagged(result, ids, "finding", _observation(result, ids)),
        _tagged(result, ids, "report", _report(result, ids)),
        _tagged(result, ids, "provenance", _provenance(result, ids)),
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


_PARTS = ("device", "heatmap", "finding", "report", "provenance")


def _tagged(
    result: AnalysisResult, ids: dict[str, str], part: str, resource: dict[str, Any]
) -> dict[str, Any]:
    tag = {"system": RESULT_KEYS, "code": f"{result.key}/{part}"}
    resource.setdefault("meta", {}).setdefault("tag", []).append(tag)
    return _entry(ids[part], resource, f"_tag={RESULT_KEYS}|{quote(tag['code'], safe='/@')}")


def _entry(full_url: str, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": if_none_exist,
        },
    }


def _report(result: AnalysisResult, ids: dict[str, str]) -> dict[str, Any]:
    card, study = result.card, result.study
    label = card.labels.positive if result.positive else card.labels.negative
    verdict = "positive" if result.positive else "negative"
    conclusion = (
        f"AI ({card.display}): {label.coding.display} ({verdict}; probability "
        f"{result.probability:.2f}, threshold {card.threshold.value:.2f}). Preliminary: "
        "not reviewed by a radiologist."
    )
    if result.cautions:
        conclusion = " ".join(("Caution:", *result.cautions, conclusion))
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "meta": ai_asserted_meta(),
        "identifier": [{"system": RESULT_KEYS, "value": result.key}],
        "status": "preliminary",
        "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": "RAD"}]}],
        "code": result.report_code,
        "subject": study.get("subject"),
        "effectiveDateTime": study.get("started") or _now(),
        "issued": _now(),
        "imagingStudy": [result.study_reference],
        "result": [{"reference": ids["finding"]}],
        "conclusion": conclusion,
        "conclusionCode": [{"coding": [label.coding.model_dump()]}],
        "presentedForm": [
            {
                "contentType": "image/png",
                "url": ids["heatmap"],
                "title": f"Grad-CAM heatmap of {card.display} over the analysed image",
                "creation": _now(),
            }
        ],
    }
    return {k: v for k, v in report.items() if v is not None}


def _observation(result: AnalysisResult, ids: dict[str, str]) -> dict[str, Any]:
    card = result.card
    coding = card.labels.positive.coding
    return {
        "resourceType": "Observation",
        "meta": ai_asserted_meta(),
        "status": "preliminary",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging"}]}],
        "code": {"coding": [coding.model_dump()], "text": coding.display},
        "subject": result.study.get("subject"),
        "effectiveDateTime": result.study.get("started") or _now(),
        "valueQuantity": {
            "value": round(result.probability, 4),
            "unit": "probability",
            "system": UCUM,
            "code": "1",
        },
        "interpretation": [
            {"coding": [{"system": INTERPRETATION, "code": "POS" if result.positive else "NEG"}]}
        ],
        "device": {"reference": ids["device"], "display": card.display},
        "derivedFrom": [result.study_reference],
        "note": [{"text": text} for text in (*result.cautions, " ".join(card.limitations))],
        "method": {"text": f"{card.title}; calibrated ({card.calibration.method})"},
    }


def _device(result: AnalysisResult) -> dict[str, Any]:
    card = result.card
    return {
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_IDS, "value": card.display}],
        "status": "active",
        "deviceName": [
            {"name": card.title, "type": "user-friendly-name"},
            {"name": card.name, "type": "model-name"},
        ],
        "type": {"coding": [DEVICE_TYPE]},
        "version": [{"value": card.version}],
        "property": [
            {"type": {"text": "weights-sha256"}, "valueCode": [{"text": card.weights_sha256}]},
            {
                "type": {"text": "decision-threshold"},
                "valueQuantity": [{"value": card.threshold.value, "system": UCUM, "code": "1"}],
            },
        ],
        "note": [{"text": f"Intended use: {card.intended_use}"}],
    }


def _binary(result: AnalysisResult) -> dict[str, Any]:
    return {
        "resourceType": "Binary",
        "contentType": "image/png",
        "securityContext": result.study_reference,
        "data": base64.b64encode(result.heatmap_png).decode("ascii"),
    }


def _provenance(result: AnalysisResult, ids: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "target": [{"reference": ids["report"]}, {"reference": ids["finding"]}],
        "recorded": _now(),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                        }
                    ]
                },
                "who": {"reference": ids["device"], "display": result.card.display},
            }
        ],
        "entity": [
            {"role": "source", "what": result.study_reference},
        ],
    }


def _uuid(key: str, part: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{part}"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
