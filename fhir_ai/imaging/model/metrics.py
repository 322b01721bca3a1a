"""Binary classification metrics, Platt calibration and threshold choice (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fhir_ai.imaging.model.card import Metrics

Floats = npt.NDArray[np.floating[Any]]
Ints = npt.NDArray[np.integer[Any]]


def roc_auc(targets: Ints, scores: Floats) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    targets = np.asarray(targets).astype(bool)
    positives, negatives = int(targets.sum()), int((~targets).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order), dtype=np.float64)
    ranks[order] = np.arange(1, len(order) + 1)
    unique, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    del unique
    for start, count in zip(first[counts > 1], counts[counts > 1], strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    rank_sum = ranks[targets].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def binary_metrics(targets: Ints, probabilities: Floats, threshold: float) -> Metrics:
    """AUC, and accuracy, sensitivity and specificity at ``probability >= threshold``."""
    truth = np.asarray(targets).astype(bool)
    called = np.asarray(probabilities) >= threshold
    positives, negatives = int(truth.sum()), int((~truth).sum())
    return Metrics(
        n=len(truth),
        auc=round(roc_auc(truth, probabilities), 4),
        accuracy=round(float((called == truth).mean()), 4),
        sensitivity=round(float((called & truth).sum() / positives), 4) if positives else 0.0,
        specificity=round(float((~called & ~truth).sum() / negatives), 4) if negatives else 0.0,
        prevalence=round(positives / len(truth), 4),
    )


def sigmoid(z: Floats) -> Floats:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))), dtype=np.float64)


def fit_platt(logits: Floats, targets: Ints, iterations: int = 100) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a*z + b)`` by Newton's method on the log loss.

    Uses Platt's smoothed targets, (N+ + 1)/(N+ + 2) and 1/(N- + 2), which keeps ``a``
    finite on separable data.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets).astype(bool)
    positives, negatives = y.sum(), (~y).sum()
    soft = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = sigmoid(a * z + b)
        weight = np.maximum(p * (1 - p), 1e-12)
        gradient = np.array([np.sum((p - soft) * z), np.sum(p - soft)])
        hessian = np.array(
            [[np.sum(weight * z * z), np.sum(weight * z)], [np.sum(weight * z), np.sum(weight)]]
        )
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def choose_threshold(
    targets: Ints, probabilities: Floats, min_specificity: float | None = None
) -> float:
    """The threshold with the highest Youden's J, among those meeting ``min_specificity``.

    Candidates are midpoints between consecutive distinct probabilities; ties go to the
    higher threshold (fewer positive calls).
    """
    truth = np.asarray(targets).astype(bool)
    values = np.unique(np.asarray(probabilities, dtype=np.float64))
    candidates = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [1.0]])
    called = np.asarray(probabilities)[None, :] >= candidates[:, None]
    sensitivity = (called & truth).sum(1) / max(truth.sum(), 1)
    specificity = (~called & ~truth).sum(1) / max((~truth).sum(), 1)
    youden = sensitivity + specificity - 1
    if min_specificity is not None:
        youden = np.where(specificity >= min_specificity, youden, -np.inf)
    best = np.flatnonzero(youden == youden.max())[-1]
    return round(float(candidates[best]), 4)
