"""Chest X-ray labels (NegBio OpenI semantics), the pipeline version, target-sentence ConText."""

from __future__ import annotations

from typing import Any

import medspacy
import pytest

from fhir_ai.nlp.cxr import binary_labels, label_report
from fhir_ai.nlp.jobs import pipeline_key
from fhir_ai.nlp.pipeline import ClinicalPipeline
from fhir_ai.nlp.rules import context_rules
from fhir_ai.nlp.terminology import default_terminology_dir, load_terminology, pipeline_version
from fhir_ai.settings import Settings


def _labels(pipeline: ClinicalPipeline, text: str) -> dict[str, str]:
    return label_report(pipeline.mentions(text), pipeline.terminology)


def test_differential_alternatives_are_positive_but_hedges_are_not(
    pipeline: ClinicalPipeline,
) -> None:
    labels = _labels(pipeline, "IMPRESSION: Bibasilar atelectasis versus infiltrate.")
    assert labels["Atelectasis"] == labels["Infiltration"] == "positive"
    hedged = _labels(pipeline, "IMPRESSION: Possible atelectasis versus infiltrate.")
    assert hedged["Atelectasis"] == "uncertain"
    (mention,) = list(pipeline.mentions("Atelectasis versus scarring."))
    assert mention.uncertain and mention.differential and mention.assertion == "possible"


def test_hiatal_hernia_is_labelled_but_not_a_negbio_binary_positive(
    pipeline: ClinicalPipeline,
) -> None:
    labels = _labels(pipeline, "FINDINGS: Large hiatal hernia. Lungs are clear.")
    assert labels["Hernia"] == "positive"
    assert binary_labels(labels)["Hernia"] == 0
    assert binary_labels(labels)["normal"] == 0


@pytest.mark.parametrize(
    ("text", "finding", "expected"),
    [
        ("Mild left-sided volume loss, unchanged.", "Atelectasis", "absent"),
        ("Bibasilar pleural scarring.", "Pleural_Thickening", "absent"),
        ("Interlobar fissural thickening.", "Pleural_Thickening", "positive"),
        ("There is a 22 x 14 mm calcified nodule in the left lower lobe.", "Nodule", "positive"),
        ("Stable without interval change of mild atelectasis.", "Atelectasis", "positive"),
    ],
)
def test_openi_label_semantics(
    pipeline: ClinicalPipeline, text: str, finding: str, expected: str
) -> None:
    assert _labels(pipeline, f"FINDINGS: {text}")[finding] == expected


def test_one_pipeline_version_for_jobs_and_results(pipeline: ClinicalPipeline) -> None:
    terminology = load_terminology(Settings().terminology_path())
    assert terminology is load_terminology()  # the same folder: one cached object
    assert pipeline.version == pipeline_version(terminology)
    key = pipeline_key(default_terminology_dir())
    assert " " not in key and key == pipeline.version.replace("; ", "+").replace(" ", "-")


def _flags(nlp: Any, text: str) -> list[tuple[str, tuple[bool, ...]]]:
    names = ("is_negated", "is_uncertain", "is_historical", "is_hypothetical", "is_family")
    return [(e.text, tuple(getattr(e._, n) for n in names)) for e in nlp(text).ents]


def test_target_sentence_context_equals_medspacy_context(pipeline: ClinicalPipeline) -> None:
    """Matching only target sentences gives medspaCy ConText's flags on a long mixed note."""
    full = medspacy.load(medspacy_enable=["medspacy_target_matcher"], load_rules=False)
    nlp = pipeline.nlp
    full.tokenizer = nlp.tokenizer
    full.add_pipe("fhir_ai_sentences", first=True)
    full.get_pipe("medspacy_target_matcher").add(
        list(nlp.get_pipe("medspacy_target_matcher").rules)
    )
    full.add_pipe("medspacy_context", config={"rules": None}).add(
        context_rules(pipeline.terminology)
    )
    text = (
        "No known allergies. Denies fever or chills. History of hypertension.\n"
        "Mother had breast cancer. Possible pneumonia in the left base. "
        "Return if chest pain develops. The patient walks daily. "
        "No evidence of pulmonary embolism, but there is a small pleural effusion."
    ) * 3
    ours = _flags(nlp, text)
    assert ours == _flags(full, text)
    assert len(ours) >= 15
