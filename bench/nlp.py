"""NLP throughput in one process: our pipeline beside medspaCy's default ``medspacy.load()``.

Both pipelines get the same target rules (the terminology's concept phrases and patterns), in
the same run, on the same texts: the MTSamples subset (../shared/data/nlp/mtsamples_subset)
and 2 KB notes cut from it. Prints notes/s, the speed ratio, the agreement of the two on
mentions and ConText flags, and the process's peak resident memory.

Usage: ``python bench/nlp.py [--data ../shared/data] [--notes 300]``. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhir_ai.settings import Settings

FLAGS = ("is_negated", "is_uncertain", "is_historical", "is_hypothetical", "is_family")


def mtsamples(folder: Path) -> list[str]:
    """The transcriptions (5th column; the file has no header) of the MTSamples subset."""
    csv.field_size_limit(sys.maxsize)
    with (folder / "nlp/mtsamples_subset/mtsamples_first400.csv").open(newline="") as handle:
        return [row[4] for row in csv.reader(handle) if len(row) > 4 and row[4].strip()]


def two_kb_notes(texts: list[str], count: int) -> list[str]:
    """``count`` notes of about 2,000 characters (cut at a sentence end)."""
    notes = []
    for text in texts:
        if len(text) >= 2000:
            cut = text.rfind(". ", 0, 2050)
            notes.append(text[: cut + 1 if cut > 1500 else 2000])
    return (notes * (count // max(len(notes), 1) + 1))[:count]


def default_pipeline() -> Any:
    """``medspacy.load()`` (PyRuSH, TargetMatcher, ConText with shipped rules) + our targets."""
    import medspacy
    from loguru import logger

    from fhir_ai.nlp.rules import target_rules
    from fhir_ai.nlp.terminology import load_terminology

    logger.remove()
    nlp = medspacy.load()
    nlp.get_pipe("medspacy_target_matcher").add(target_rules(load_terminology()))
    return nlp


def timed(run: Callable[[list[str]], list[Any]], texts: list[str]) -> tuple[float, list[Any]]:
    began = time.perf_counter()
    result = run(texts)
    return time.perf_counter() - began, result


def spans(docs: list[Any]) -> list[set[tuple[int, int, str, tuple[bool, ...]]]]:
    return [{(e.start_char, e.end_char, e.label_, tuple(getattr(e._, f) for f in FLAGS))
             for e in doc.ents} for doc in docs]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Settings().shared_data_dir)
    parser.add_argument("--notes", type=int, default=300, help="number of 2 KB notes")
    args = parser.parse_args()
    from fhir_ai.nlp.pipeline import load_pipeline

    ours = load_pipeline().nlp
    theirs = default_pipeline()
    corpora = {"mtsamples": mtsamples(args.data)}
    corpora["2 KB notes"] = two_kb_notes(corpora["mtsamples"], args.notes)
    for name, texts in corpora.items():
        ours_s, ours_docs = timed(lambda t: list(ours.pipe(t, batch_size=32)), texts)
        theirs_s, theirs_docs = timed(lambda t: list(theirs.pipe(t, batch_size=32)), texts)
        a, b = spans(ours_docs), spans(theirs_docs)
        pairs = list(zip(a, b, strict=True))
        same_ents = sum(len({x[:3] for x in p} & {y[:3] for y in q}) for p, q in pairs)
        same_flags = sum(len(p & q) for p, q in pairs)
        total = sum(len(q) for q in b)
        print(f"{name}: {len(texts)} notes, mean {sum(map(len, texts)) / len(texts):.0f} chars")
        print(f"  ours    {len(texts) / ours_s:7.1f} notes/s ({ours_s:.1f} s)")
        print(f"  default {len(texts) / theirs_s:7.1f} notes/s ({theirs_s:.1f} s)")
        print(f"  speed-up x{theirs_s / ours_s:.1f}; of the default's {total} mentions, ")
        print(f"  {same_ents} found by ours at the same offsets, {same_flags} with equal flags")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (both pipelines loaded): {peak:.0f} MB")


if __name__ == "__main__":
    main()
