"""Sentence-level ConText evaluation: our pipeline beside medspaCy's default ``medspacy.load()``.

Each annotated sentence names one concept phrase and its gold flags (negated, uncertain,
historical, hypothetical, family). Both pipelines get that phrase as the only target (as
``fhir-ai nlp assert`` does), so only the assertion logic is compared. Prints, per flag and per
file, precision, recall and F1 of each pipeline.

Files: ``tests/data/context_eval.tsv`` (154 sentences written before any pipeline was run on
them: the held-out check) and ``tests/data/nlp_assertions.tsv`` (the sentences the rules were
developed and tested on). No published negation test set ships in ``../shared/data`` (the
GenNegEx README names its ``Annotations-1-120-random.txt`` kit, which is not included).

Usage: ``python bench/context_eval.py [--errors]``. Not a test.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

FLAGS = ("negated", "uncertain", "historical", "hypothetical", "family")
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FILES = ("context_eval.tsv", "nlp_assertions.tsv")
Annotation = tuple[str, str, frozenset[str]]
Flagger = Callable[[str, str], frozenset[str]]


def read_annotations(path: Path) -> list[Annotation]:
    """``(text, concept, flags)`` rows of a TSV file (``#`` comments; ``-`` for no flag)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            text, concept, flags = line.split("\t")
            rows.append(
                (text, concept, frozenset() if flags == "-" else frozenset(flags.split(",")))
            )
    return rows


def default_flags(nlp: Any, text: str, concept: str) -> dict[str, bool]:
    """The flags medspaCy pipeline ``nlp`` gives ``concept`` in ``text`` (phrase as target)."""
    from fhir_ai.nlp.pipeline import find_phrase

    doc = nlp.make_doc(text)
    span = find_phrase(doc, concept)
    if span is None:
        raise ValueError(f"{concept!r} not in {text!r}")
    for name, component in nlp.pipeline:
        if name == "medspacy_target_matcher":
            doc.ents = [span]
        else:
            doc = component(doc)
    (ent,) = doc.ents
    return {flag: bool(getattr(ent._, f"is_{flag}")) for flag in FLAGS}


def scores(rows: list[Annotation], guesses: list[frozenset[str]], flag: str) -> tuple[float, ...]:
    """Precision, recall and F1 of ``flag`` over the rows."""
    tp = sum(flag in g and flag in r[2] for r, g in zip(rows, guesses, strict=True))
    fp = sum(flag in g and flag not in r[2] for r, g in zip(rows, guesses, strict=True))
    fn = sum(flag not in g and flag in r[2] for r, g in zip(rows, guesses, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def flaggers() -> dict[str, Flagger]:
    """Ours (``assert_phrase``) and medspaCy's default pipeline, as text+concept -> flags."""
    import medspacy
    from loguru import logger

    from fhir_ai.nlp.pipeline import load_pipeline

    logger.remove()
    ours, default = load_pipeline(), medspacy.load()

    def our_flags(text: str, concept: str) -> frozenset[str]:
        mention = ours.assert_phrase(text, concept)
        return frozenset(f for f in FLAGS if mention and getattr(mention, f))

    def their_flags(text: str, concept: str) -> frozenset[str]:
        return frozenset(f for f, v in default_flags(default, text, concept).items() if v)

    return {"ours": our_flags, "default": their_flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--errors", action="store_true", help="print our wrong sentences")
    args = parser.parse_args()
    pipelines = flaggers()
    for name in FILES:
        rows = read_annotations(DATA / name)
        print(f"\n{name}: {len(rows)} sentences")
        guesses = {
            p: [run(text, concept) for text, concept, _ in rows] for p, run in pipelines.items()
        }
        for flag in FLAGS:
            cells = []
            for pipeline, found in guesses.items():
                precision, recall, f1 = scores(rows, found, flag)
                cells.append(f"{pipeline} P {precision:.3f} R {recall:.3f} F1 {f1:.3f}")
            gold = sum(flag in r[2] for r in rows)
            print(f"  {flag:<12} (gold {gold:3d})  " + "   ".join(cells))
        if args.errors:
            for (text, concept, gold_flags), ours in zip(rows, guesses["ours"], strict=True):
                if ours != gold_flags:
                    print(f"    {concept!r}: gold {sorted(gold_flags)} ours {sorted(ours)}: {text}")


if __name__ == "__main__":
    main()
