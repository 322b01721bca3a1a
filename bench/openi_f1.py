"""``label-cxr --binary`` micro-F1 on the OpenI development reports against NegBio's gold labels.

Usage: ``python bench/openi_f1.py [--data ../shared/data/nlp/openi] [--errors FINDING]``.
Prints the micro-F1 over the 14 findings and per finding, for the shipped binary mapping
(uncertain counts as negative) and for the alternative (uncertain counts as positive).
The report text is the findings and impression, as NegBio labels them.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from fhir_ai.nlp.cxr import FINDINGS, label_report
from fhir_ai.nlp.pipeline import load_pipeline


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/nlp/openi"))
    parser.add_argument("--errors", default=None, help="print the errors of this finding")
    args = parser.parse_args()
    ids, texts, gold = load(args.data)
    pipeline = load_pipeline()
    began = time.perf_counter()
    predicted = [label_report(m, pipeline.terminology) for m in pipeline.mentions_many(texts)]
    elapsed = time.perf_counter() - began
    print(f"{len(texts)} reports in {elapsed:.1f} s ({len(texts) / elapsed:.0f} reports/s)")
    for name, positive in (("uncertain=0 (shipped)", {"positive"}),
                           ("uncertain=1", {"positive", "uncertain"})):  # fmt: skip
        counts = {f: [0, 0, 0] for f in FINDINGS}
        for labels, truth in zip(predicted, gold, strict=True):
            for finding in FINDINGS:
                guess = labels[finding] in positive
                counts[finding][0] += guess and truth[finding] == 1
                counts[finding][1] += guess and truth[finding] == 0
                counts[finding][2] += (not guess) and truth[finding] == 1
        total = [sum(c[i] for c in counts.values()) for i in range(3)]
        tp, fp, fn = total
        print(f"\nmapping {name}: micro-F1 {f1(tp, fp, fn):.4f}  (tp {tp} fp {fp} fn {fn})")
        for finding, (tp, fp, fn) in counts.items():
            print(f"  {finding:<20} F1 {f1(tp, fp, fn):.3f}  tp {tp:4d} fp {fp:4d} fn {fn:4d}")
    if args.errors:
        for key, text, labels, truth in zip(ids, texts, predicted, gold, strict=True):
            guess = int(labels[args.errors] == "positive")
            if guess != truth[args.errors]:
                print(f"\n{key} gold={truth[args.errors]} ours={labels[args.errors]}: {text}")


if __name__ == "__main__":
    main()
