"""ConText categories on our own annotated sentences, and on each documented rule fix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import medspacy
import pytest
from spacy.language import Language

from fhir_ai.nlp.pipeline import ClinicalPipeline
from fhir_ai.nlp.terminology import load_terminology

FLAGS = ("negated", "uncertain", "historical", "hypothetical", "family")
SENTENCES = Path(__file__).parents[2] / "data" / "nlp_assertions.tsv"
sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
from context_eval import default_flags, read_annotations, scores  # type: ignore[import-not-found]  # noqa: E402


def _annotated() -> list[tuple[str, str, frozenset[str]]]:
    rows: list[tuple[str, str, frozenset[str]]] = read_annotations(SENTENCES)
    return rows


@pytest.mark.parametrize(("text", "concept", "flags"), _annotated())
def test_annotated_sentence(
    pipeline: ClinicalPipeline, text: str, concept: str, flags: frozenset[str]
) -> None:
    mention = pipeline.assert_phrase(text, concept)
    assert mention is not None
    assert {f for f in FLAGS if getattr(mention, f)} == flags


def test_every_category_is_exercised() -> None:
    seen = set().union(*(flags for _, _, flags in _annotated()))
    assert seen == set(FLAGS)
    assert sum(1 for _, _, flags in _annotated() if not flags) >= 8  # affirmed controls


def _fix_examples() -> list[tuple[str, dict[str, Any]]]:
    return [(fix.id, ex) for fix in load_terminology().context_fixes for ex in fix.examples]


@pytest.mark.parametrize(("fix", "example"), _fix_examples())
def test_rule_fix_example(pipeline: ClinicalPipeline, fix: str, example: dict[str, Any]) -> None:
    mention = pipeline.assert_phrase(example["text"], example["concept"])
    assert mention is not None, fix
    for flag, expected in example["expect"].items():
        assert getattr(mention, flag) is expected, (fix, example["text"], flag)


@pytest.fixture(scope="module")
def default_nlp() -> Language:
    return medspacy.load()


def _default_flags(nlp: Language, text: str, concept: str) -> dict[str, bool]:
    flags: dict[str, bool] = default_flags(nlp, text, concept)
    return flags


@pytest.mark.parametrize("fix", load_terminology().context_fixes, ids=lambda f: f.id)
def test_each_fix_corrects_the_default_rules(default_nlp: Language, fix: Any) -> None:
    """Each fix has an example that medspaCy's default pipeline gets wrong."""
    wrong = [
        ex["text"]
        for ex in fix.examples
        if any(
            _default_flags(default_nlp, ex["text"], ex["concept"])[flag] is not expected
            for flag, expected in ex["expect"].items()
        )
    ]
    assert wrong, f"fix {fix.id}: the default rules already pass every example"


def test_context_eval_set_scores(pipeline: ClinicalPipeline) -> None:
    """``bench/context_eval.py``'s set: negation F1 >= 0.97, the other flags >= 0.9."""
    rows = read_annotations(SENTENCES.with_name("context_eval.tsv"))
    assert len(rows) >= 150
    guesses = []
    for text, concept, _ in rows:
        mention = pipeline.assert_phrase(text, concept)
        guesses.append(frozenset(f for f in FLAGS if mention and getattr(mention, f)))
    assert scores(rows, guesses, "negated")[2] >= 0.97
    for flag in ("uncertain", "historical", "hypothetical", "family"):
        assert scores(rows, guesses, flag)[2] >= 0.9, flag
