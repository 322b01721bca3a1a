"""``label-cxr --binary`` micro-F1 on the OpenI development reports against NegBio's gold labels.

Usage: ``python -m bench.openi_f1 [--data DIR] [--errors FINDING]`` (default: the openi folder
under ``FHIR_AI_SHARED_DATA_DIR``).
Prints the micro-F1 over the 14 findings and per finding, for the shipped binary mapping
(uncertain counts as negative) and for the alternative (uncertain counts as positive), on all
reports and separately on the development part and the held-out part (every 5th report,
kept out of rule development as a check of over-fitting; ``--errors`` shows only dev errors).
The report text is the findings and impression, as NegBio labels them.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from fhir_ai.nlp.cxr import BINARY_POSITIVE, FINDINGS, binary_labels, label_report
from fhir_ai.nlp.pipeline import load_pipeline
from fhir_ai.settings import Settings


def report_text(row: dict[str, str]) -> str:
    """FINDINGS and IMPRESSION sections of one OpenI report."""
    parts = []
    for name in ("findings", "impression"):
        value = (row.get(name) or "").strip()
        if value:
            parts.append(f"{name.upper()}: {value}")
    return "\n".join(parts)


def load(folder: Path) -> tuple[list[str], list[str], list[dict[str, int]]]:
    """Report ids, texts and gold labels, joined on uid N = CXR<N>."""
    with (folder / "openi_labels_dev.csv").open(newline="") as handle:
        gold = {r["filename"]: r for r in csv.DictReader(handle)}
    ids, texts, labels = [], [], []
    with (folder / "iu_reports_dev.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            key = f"CXR{row['uid']}"
            if key in gold:
                ids.append(key)
                texts.append(report_text(row))
                labels.append({f: int(gold[key][f]) for f in FINDINGS})
    return ids, texts, labels


def f1(tp: int, fp: int, fn: int) -> float:
    """F1 from counts (0 when undefined)."""
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def held_out(index: int) -> bool:
    """Every 5th report (index 4, 9, ...) is kept out of rule development as a check."""
    return index % 5 == 4


def binary(labels: dict[str, str], positive: frozenset[str]) -> dict[str, int]:
    """``label-cxr --binary`` labels, or the same with ``positive`` values counted as 1."""
    if positive == BINARY_POSITIVE:
        return binary_labels(labels)
    return {f: int(labels[f] in positive) for f in FINDINGS}


def counts(guesses: list[dict[str, int]], gold: list[dict[str, int]]) -> dict[str, list[int]]:
    """tp, fp, fn per finding."""
    table = {f: [0, 0, 0] for f in FINDINGS}
    for guess, truth in zip(guesses, gold, strict=True):
        for finding in FINDINGS:
            table[finding][0] += guess[finding] and truth[finding]
            table[finding][1] += guess[finding] and not truth[finding]
            table[finding][2] += truth[finding] and not guess[finding]
    return table


def micro(table: dict[str, list[int]]) -> tuple[float, list[int]]:
    """Micro-F1 and the summed counts."""
    total = [sum(c[i] for c in table.values()) for i in range(3)]
    return f1(*total), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Settings().shared_data_dir / "nlp" / "openi")
    parser.add_argument("--errors", default=None, help="print the dev-part errors of a finding")
    args = parser.parse_args()
    ids, texts, gold = load(args.data)
    pipeline = load_pipeline()
    began = time.perf_counter()
    predicted = [label_report(m, pipeline.terminology) for m in pipeline.mentions_many(texts)]
    elapsed = time.perf_counter() - began
    print(f"{len(texts)} reports in {elapsed:.1f} s ({len(texts) / elapsed:.0f} reports/s)")
    for name, positive in (("uncertain=0 (shipped)", BINARY_POSITIVE),
                           ("uncertain=1", frozenset({"positive", "uncertain"}))):  # fmt: skip
        guesses = [binary(labels, positive) for labels in predicted]
        table = counts(guesses, gold)
        score, (tp, fp, fn) = micro(table)
        print(f"\nmapping {name}: micro-F1 {score:.4f}  (tp {tp} fp {fp} fn {fn})")
        for part, keep in (("dev 4/5", False), ("held-out 1/5", True)):
            rows = [i for i in range(len(gold)) if held_out(i) == keep]
            part_score, _ = micro(counts([guesses[i] for i in rows], [gold[i] for i in rows]))
            print(f"  {part:<13} micro-F1 {part_score:.4f}  ({len(rows)} reports)")
        for finding, (tp, fp, fn) in table.items():
            print(f"  {finding:<20} F1 {f1(tp, fp, fn):.3f}  tp {tp:4d} fp {fp:4d} fn {fn:4d}")
    if args.errors:
        for index, (key, text, labels, truth) in enumerate(
            zip(ids, texts, predicted, gold, strict=False)
        ):
            guess = binary_labels(labels)[args.errors]
            if guess != truth[args.errors] and not held_out(index):
                print(f"\n{key} gold={truth[args.errors]} ours={labels[args.errors]}: {text}")


if __name__ == "__main__":
    main()
