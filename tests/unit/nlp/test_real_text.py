"""Real text: medspaCy's discharge summary, Synthea reports, the OpenI development reports."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_ai.errors import InvalidResource
from fhir_ai.nlp.extract import extract_for_resource
from fhir_ai.nlp.pipeline import ClinicalPipeline
from fhir_ai.settings import Settings


def _by_text(pipeline: ClinicalPipeline, text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in pipeline.mentions(text):
        flags = [
            f
            for f in ("negated", "uncertain", "historical", "hypothetical", "family")
            if getattr(m, f)
        ]
        found.setdefault(m.text.lower(), []).append(",".join(flags) or "present")
    return found


def test_discharge_summary(pipeline: ClinicalPipeline, shared_data: Path) -> None:
    text = (shared_data / "nlp/medspacy_fixtures/discharge_summary.txt").read_text()
    found = _by_text(pipeline, text)
    assert found["type 2 dm"] == ["present", "present"]  # HPI and discharge diagnosis
    assert found["stroke"] == ["present", "family"]  # recent stroke; mother with stroke
    assert found["metastasis"] == ["negated"]
    assert "historical" in found["colon cancer"][0]
    assert found["hypertension"] == ["historical"]
    assert found["pancreatitis"] == ["present"]
    assert found["fever"] == ["hypothetical"]
    assert found["abdominal pain"] == ["present", "present", "hypothetical", "hypothetical"]


def test_synthea_reports_extract_or_skip_clearly(shared_data: Path) -> None:
    folder = shared_data / "fhir/synthea-r4-transaction-bundles"
    reports = [
        entry["resource"]
        for path in sorted(folder.glob("*_*.json"))
        for entry in json.loads(path.read_text())["entry"]
        if entry["resource"]["resourceType"] in ("DiagnosticReport", "DocumentReference")
    ]
    assert reports
    for report in reports:
        try:
            bundle = extract_for_resource(report, lambda url: None, Settings())
        except InvalidResource as error:
            assert error.message == "the document has no text to analyse"
        else:
            assert bundle["type"] == "transaction"


def test_openi_binary_micro_f1(pipeline: ClinicalPipeline, shared_data: Path) -> None:
    """``label-cxr --binary`` on the 3,080 OpenI reports (a few seconds): micro-F1 >= 0.92."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
    from openi_f1 import counts, load, micro  # type: ignore[import-not-found]

    from fhir_ai.nlp.cxr import binary_labels, label_report

    _, texts, gold = load(shared_data / "nlp/openi")
    guesses = [
        binary_labels(label_report(mentions, pipeline.terminology))
        for mentions in pipeline.mentions_many(texts)
    ]
    score, _ = micro(counts(guesses, gold))
    assert score >= 0.92
