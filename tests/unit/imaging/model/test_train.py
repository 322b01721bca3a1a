"""Training splits and cross-fitting: which images train which members, and who scores whom."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from fhir_ai.imaging.model import ensemble
from fhir_ai.imaging.model.data import FloatArray
from fhir_ai.imaging.model.network import SmallResNet
from fhir_ai.imaging.model.specs import ModelSpec, get_spec
from fhir_ai.imaging.model.train import CrossFit, _split_text, make_splits, member_seeds

CPU = torch.device("cpu")


def _cross_fitted(name: str, epochs: int | None = None, members_per_fold: int = 2) -> ModelSpec:
    spec = get_spec(name)
    train = dataclasses.replace(
        spec.train,
        cross_fit_folds=5,
        cross_fit_members=members_per_fold,
        epochs=epochs or spec.train.epochs,
    )
    return dataclasses.replace(spec, train=train)


def _image_keys(images: FloatArray) -> set[bytes]:
    return {image.tobytes() for image in images}


def test_cross_fitting_keeps_the_own_test_images_of_the_held_out_recipe(
    npz_path: dict[str, Path],
) -> None:
    spec = get_spec("breast-us")
    assert spec.train.cross_fit_folds == 0  # the packaged model holds calibration out
    crossed = make_splits(npz_path["breast-us"], _cross_fitted("breast-us"), spec.train.seed, None)
    held_out = make_splits(npz_path["breast-us"], spec, spec.train.seed, None)
    assert (crossed.own_test.images == held_out.own_test.images).all()
    assert len(crossed.own_test) == 82
    # every other train image and every val image trains the members, and is calibrated on
    assert crossed.fit is crossed.calibration
    assert len(crossed.fit) == 546 - 82 + 78
    assert crossed.val_rows is not None
    assert (crossed.fit.images[crossed.val_rows] == crossed.val.images).all()
    assert not _image_keys(crossed.fit.images) & _image_keys(crossed.own_test.images)


def test_each_fold_is_scored_only_by_members_that_never_saw_it(
    npz_path: dict[str, Path],
) -> None:
    spec = _cross_fitted("breast-us", epochs=1, members_per_fold=1)
    splits = make_splits(npz_path["breast-us"], spec, spec.train.seed, 160)
    cross_fit = CrossFit(spec, splits.fit)
    jobs = cross_fit.jobs()
    assert len(jobs) == 5
    assert not {job.seed for job in jobs} & set(member_seeds(spec.train))
    for fold, job in enumerate(jobs):
        held = _image_keys(splits.fit.images[cross_fit.folds == fold])
        assert not held & _image_keys(job.fit.images)
        assert len(job.fit) == (cross_fit.folds != fold).sum()
    # untrained members are enough to check who scores whom
    torch.manual_seed(0)
    stored = [ensemble.to_stored(SmallResNet(spec.architecture)) for _ in jobs]
    logits = cross_fit.out_of_fold_logits(stored, CPU)
    for fold, member in enumerate(stored):
        rows = np.flatnonzero(cross_fit.folds == fold)
        own = ensemble.mean_logits(
            [ensemble.from_stored(member, spec.architecture, CPU)],
            splits.fit.images[rows],
            tta_hflip=spec.tta_hflip,
            device=CPU,
        )
        assert logits[rows] == pytest.approx(own, abs=1e-6)
    assert len(np.unique(np.round(logits, 5))) > 5  # the folds' members differ


@pytest.mark.parametrize("calibrate_on_val", [False, True])
def test_the_card_says_who_scored_val(calibrate_on_val: bool) -> None:
    spec = _cross_fitted("breast-us")
    spec = dataclasses.replace(
        spec, train=dataclasses.replace(spec.train, calibrate_on_val=calibrate_on_val)
    )
    text = _split_text(spec)
    assert ("plus the official val split" in text) is calibrate_on_val
    if calibrate_on_val:  # val is in the pool: each fold's members score its val images
        assert "val figures are out-of-fold" in text
    else:  # val is outside the pool: the final members score it
        assert "val figures are from the final members" in text
