"""Rank AUC, metrics at a threshold, Platt scaling and the threshold rule."""

from __future__ import annotations

import numpy as np
import pytest

from fhir_ai.imaging.model.metrics import (
    binary_metrics,
    choose_threshold,
    fit_platt,
    roc_auc,
    sigmoid,
)


def test_auc_counts_pairs_and_half_counts_ties() -> None:
    targets = np.array([0, 0, 1, 1])
    assert roc_auc(targets, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(targets, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(targets, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(1.0)
    assert roc_auc(np.array([0, 1, 1]), np.array([0.3, 0.3, 0.9])) == pytest.approx(0.75)


def test_metrics_at_threshold() -> None:
    targets = np.array([1, 1, 1, 0, 0])
    metrics = binary_metrics(targets, np.array([0.9, 0.6, 0.2, 0.7, 0.1]), 0.5)
    assert (metrics.n, metrics.sensitivity, metrics.specificity) == (5, 0.6667, 0.5)
    assert metrics.accuracy == 0.6


def test_platt_recovers_a_known_logistic_map() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    targets = (rng.random(20000) < sigmoid(0.5 * z - 1.0)).astype(np.int64)
    a, b = fit_platt(z, targets)
    assert a == pytest.approx(0.5, abs=0.05)
    assert b == pytest.approx(-1.0, abs=0.08)


def test_platt_stays_finite_on_separable_data() -> None:
    a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    assert np.isfinite([a, b]).all()
    assert a > 0


def test_threshold_maximises_youden_and_honours_min_specificity() -> None:
    targets = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9])
    assert choose_threshold(targets, scores) == pytest.approx(0.675)
    strict = choose_threshold(targets, scores, min_specificity=1.0)
    assert binary_metrics(targets, scores, strict).specificity == 1.0
