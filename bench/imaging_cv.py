"""Stratified k-fold cross-validation of an imaging model's training recipe on the train split.

Compares the registered spec with named variants on the same folds and member seeds (paired),
so a change is judged on all of train rather than on the small val and own-test hold-outs.
Each fold trains ``--members`` members on the other folds and scores its own images (mean
logit, with the spec's flip TTA); reports the fold AUCs' mean and sd, and the pooled
out-of-fold AUC, and for each later variant its paired fold gains over the first one named.
Each member's out-of-fold logits are cached in ``--cache`` (JSON), so runs can be resumed and
a cheap screen with ``--members 1`` is the first member of a later ``--members 2`` run.
CPU workers use one thread each and are deterministic.

Usage: ``python -m bench.imaging_cv breast-us --data PATH [--variants base,inorm] [--folds 5]
[--members 2] [--workers 1]``. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fhir_ai.imaging.model import ensemble
from fhir_ai.imaging.model.data import Dataset, IntArray, load_split, stratified_folds
from fhir_ai.imaging.model.metrics import roc_auc
from fhir_ai.imaging.model.specs import AugmentSpec, ModelSpec, get_spec
from fhir_ai.imaging.model.train import member_seeds, train_member

STRONG_AUGMENT = AugmentSpec(
    rotate_deg=20.0,
    translate=0.12,
    scale=(0.8, 1.2),
    brightness=0.15,
    contrast=0.4,
    gamma=0.3,
    noise_std=0.03,
)


def _arch(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return dataclasses.replace(spec, architecture=dataclasses.replace(spec.architecture, **changes))


def _hp(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, **changes))


VARIANTS: dict[str, Callable[[ModelSpec], ModelSpec]] = {
    "base": lambda s: s,
    "inorm": lambda s: _arch(s, instance_norm_input=True),
    "ema": lambda s: _hp(s, ema_decay=0.99),
    "strong_aug": lambda s: _hp(s, augment=STRONG_AUGMENT),
    "wide": lambda s: _arch(s, widths=(24, 48, 96)),
    "long": lambda s: _hp(s, epochs=2 * s.train.epochs),
    "up2_narrow": lambda s: _arch(s, upsample=2, widths=(8, 16, 32)),
    "up2": lambda s: _arch(s, upsample=2),
    "bs32": lambda s: _hp(s, batch_size=32),
    "wd05": lambda s: _hp(s, weight_decay=0.05),
    "drop3": lambda s: _arch(s, dropout=0.3),
    "mix4": lambda s: _hp(s, mixup_alpha=0.4),
    "inorm_ema": lambda s: _hp(_arch(s, instance_norm_input=True), ema_decay=0.99),
    "inorm_ema_up2n": lambda s: _hp(
        _arch(s, instance_norm_input=True, upsample=2, widths=(8, 16, 32)), ema_decay=0.99
    ),
}


def _member_logits(spec: ModelSpec, fit: Dataset, held: Dataset, seed: int) -> list[float]:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cpu = torch.device("cpu")
    member = ensemble.from_stored(train_member(spec, fit, seed, cpu), spec.architecture, cpu)
    logits = ensemble.mean_logits([member], held.images, tta_hflip=spec.tta_hflip, device=cpu)
    return [float(v) for v in logits]


def member_key(model: str, variant: str, folds: int, fold: int, seed: int) -> str:
    """Cache key of one member's out-of-fold logits.

    Members are cached one by one, so ``--members 1`` results are the first member of a
    ``--members 2`` run (same seed) and a screen on one member per fold is never wasted.
    """
    return f"{model}/{variant}/k{folds}/f{fold}/s{seed}"


def run_variant(
    spec: ModelSpec,
    name: str,
    train: Dataset,
    folds: IntArray,
    members: int,
    workers: int,
    cache: dict[str, Any],
    save: Callable[[], None],
) -> list[list[float]]:
    """Out-of-fold mean logits, one list per fold; trains only the members not in ``cache``."""
    seeds = member_seeds(dataclasses.replace(spec.train, members=members))
    k = int(folds.max()) + 1
    todo = [
        (f, s) for f in range(k) for s in seeds if member_key(spec.name, name, k, f, s) not in cache
    ]
    if todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            started = time.monotonic()
            futures = {
                pool.submit(
                    _member_logits,
                    spec,
                    train.subset(np.flatnonzero(folds != f)),
                    train.subset(np.flatnonzero(folds == f)),
                    seed,
                ): (f, seed)
                for f, seed in todo
            }
            for future in futures:
                f, seed = futures[future]
                cache[member_key(spec.name, name, k, f, seed)] = {
                    "logits": future.result(),
                    "wall_s": round(time.monotonic() - started, 1),
                }
                started = time.monotonic()
                save()
    return [
        [
            float(v)
            for v in np.mean(
                [cache[member_key(spec.name, name, k, f, s)]["logits"] for s in seeds], axis=0
            )
        ]
        for f in range(k)
    ]


def fold_aucs(train: Dataset, folds: IntArray, logits: list[list[float]]) -> list[float]:
    """AUC of each held-out fold."""
    return [roc_auc(train.targets[folds == f], np.asarray(fold)) for f, fold in enumerate(logits)]


def summarise(train: Dataset, folds: IntArray, logits: list[list[float]]) -> dict[str, float]:
    """Fold AUCs' mean and sd, and the pooled out-of-fold AUC."""
    aucs = fold_aucs(train, folds, logits)
    pooled = np.empty(len(train), dtype=np.float64)
    for f, fold in enumerate(logits):
        pooled[folds == f] = fold
    return {
        "auc_mean": statistics.mean(aucs),
        "auc_sd": statistics.stdev(aucs),
        "auc_pooled": roc_auc(train.targets, pooled),
        **{f"auc_fold{f}": auc for f, auc in enumerate(aucs)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--variants", default="base")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fhir_ai_imaging_cv.json"))
    args = parser.parse_args()
    base = get_spec(args.model)
    train = load_split(args.data, "train", base.positive_label)
    folds = stratified_folds(train.targets, args.folds, base.train.seed)
    cache: dict[str, Any] = json.loads(args.cache.read_text()) if args.cache.exists() else {}

    def save() -> None:
        args.cache.write_text(json.dumps(cache))

    reference: list[float] | None = None
    for name in args.variants.split(","):
        started = time.monotonic()
        spec = VARIANTS[name](base)
        logits = run_variant(spec, name, train, folds, args.members, args.workers, cache, save)
        result = summarise(train, folds, logits)
        aucs = [result[f"auc_fold{f}"] for f in range(args.folds)]
        line = (
            f"{args.model}/{name}/k{args.folds}/m{args.members}: "
            f"AUC {result['auc_mean']:.3f} +/- {result['auc_sd']:.3f} "
            f"(pooled {result['auc_pooled']:.3f}; folds " + " ".join(f"{a:.3f}" for a in aucs)
        )
        if reference is None:
            reference = aucs
        else:
            gains = [a - r for a, r in zip(aucs, reference, strict=True)]
            line += (
                f"; paired gain over {args.variants.split(',')[0]} "
                f"{statistics.mean(gains):+.3f} +/- {statistics.stdev(gains):.3f}, "
                f"higher on {sum(g > 0 for g in gains)}/{len(gains)} folds"
            )
        print(line + f"; {time.monotonic() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
