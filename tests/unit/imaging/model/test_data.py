"""MedMNIST npz loading, label mapping per model, and the stratified split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fhir_ai.errors import InvalidRequest
from fhir_ai.imaging.model.data import (
    load_split,
    stratified_folds,
    stratified_split,
    to_targets,
    to_unit_float,
)
from fhir_ai.imaging.model.specs import get_spec


def test_breast_positive_is_label_zero_malignant() -> None:
    spec = get_spec("breast-us")
    assert spec.positive_label == 0
    assert to_targets(np.array([[0], [1], [0]]), spec.positive_label).tolist() == [1, 0, 1]


def test_pneumonia_positive_is_label_one() -> None:
    spec = get_spec("pneumonia-cxr")
    assert to_targets(np.array([[0], [1], [1]]), spec.positive_label).tolist() == [0, 1, 1]


def test_breast_file_loads_with_malignant_as_the_minority_positive(
    npz_path: dict[str, Path],
) -> None:
    train = load_split(npz_path["breast-us"], "train", get_spec("breast-us").positive_label)
    assert train.images.shape == (546, 1, 28, 28)
    assert train.images.dtype == np.float32
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0
    assert int(train.targets.sum()) == 147  # the malignant (label 0) images


def test_official_file_test_split_is_read(official_npz: Path) -> None:
    test = load_split(official_npz, "test", 1)
    assert test.images.shape == (200, 1, 28, 28)


def test_missing_split_is_a_clear_error(npz_path: dict[str, Path]) -> None:
    with pytest.raises(InvalidRequest, match="no test split"):
        load_split(npz_path["pneumonia-cxr"], "test", 1)


def test_unit_float_accepts_a_trailing_channel_axis() -> None:
    images = np.full((2, 28, 28, 1), 255, dtype=np.uint8)
    out = to_unit_float(images)
    assert out.shape == (2, 1, 28, 28)
    assert float(out.max()) == 1.0


def test_stratified_split_is_disjoint_complete_and_keeps_prevalence() -> None:
    targets = np.array([1] * 300 + [0] * 100, dtype=np.int64)
    own_test, calibration, fit = stratified_split(targets, (0.15, 0.15), seed=3)
    together = np.concatenate([own_test, calibration, fit])
    assert sorted(together.tolist()) == list(range(400))
    assert (len(own_test), len(calibration), len(fit)) == (60, 60, 280)
    assert targets[own_test].mean() == pytest.approx(0.75)
    again = stratified_split(targets, (0.15, 0.15), seed=3)
    assert all((a == b).all() for a, b in zip(again, (own_test, calibration, fit), strict=True))


def test_folds_partition_each_class_evenly_and_repeat_with_the_seed() -> None:
    targets = np.array([1] * 30 + [0] * 70, dtype=np.int64)
    folds = stratified_folds(targets, 5, seed=11)
    assert sorted(np.unique(folds).tolist()) == [0, 1, 2, 3, 4]
    for fold in range(5):
        assert (targets[folds == fold] == 1).sum() == 6
        assert (folds == fold).sum() == 20
    assert (stratified_folds(targets, 5, seed=11) == folds).all()
    assert not (stratified_folds(targets, 5, seed=12) == folds).all()
