"""``fhir-ai train``: a seeded, CPU-deterministic ensemble with Platt calibration and its card."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fhir_ai.imaging.model import ensemble
from fhir_ai.imaging.model.augment import WeightAverage, augment, cosine_lr, mixup
from fhir_ai.imaging.model.card import (
    CARD_FILE,
    WEIGHTS_FILE,
    Calibration,
    Metrics,
    ModelCard,
    Threshold,
    Training,
)
from fhir_ai.imaging.model.data import (
    Dataset,
    FloatArray,
    file_sha256,
    load_split,
    stratified_folds,
    stratified_split,
)
from fhir_ai.imaging.model.metrics import binary_metrics, choose_threshold, fit_platt, sigmoid
from fhir_ai.imaging.model.network import SmallResNet
from fhir_ai.imaging.model.specs import ModelSpec, TrainSpec, get_spec

select_device = ensemble.select_device

logger = logging.getLogger("fhir_ai.imaging.model.train")


@dataclass(frozen=True, slots=True)
class Splits:
    """Train split three ways (fit, calibration, own test), plus the official val split.

    With cross-fitting, ``calibration`` is ``fit`` (scored out of fold), and ``val_rows``
    says where val's images are in it (None: val is scored by the final members).
    """

    fit: Dataset
    calibration: Dataset
    own_test: Dataset
    val: Dataset
    val_rows: slice | None = None


@dataclass(frozen=True, slots=True)
class Overrides:
    """Shorter runs for smoke tests; recorded in the card's command."""

    epochs: int | None = None
    members: int | None = None
    limit: int | None = None
    cross_fit: int | None = None


@dataclass(frozen=True, slots=True)
class MemberJob:
    """One member to train: its images and its seed."""

    fit: Dataset
    seed: int


def make_splits(data: Path, spec: ModelSpec, seed: int, limit: int | None) -> Splits:
    """Stratified own-test and calibration hold-outs from train; val as is.

    Cross-fitting holds out own test alone (the same images as without it: the split
    deals each class from the same seeded shuffle); the rest, with val when the spec
    calibrates on it, is both fit and calibration.
    """
    hp = spec.train
    train = load_split(data, "train", spec.positive_label)
    val = load_split(data, "val", spec.positive_label)
    if limit is not None:
        train = train.subset(np.arange(min(limit, len(train))))
    if hp.cross_fit_folds:
        own_test, rest = stratified_split(train.targets, (hp.own_test_fraction,), seed)
        pool, val_rows = train.subset(rest), None
        if hp.calibrate_on_val:
            pool, val_rows = Dataset.concat(pool, val), slice(len(rest), len(rest) + len(val))
        return Splits(pool, pool, train.subset(own_test), val, val_rows)
    fractions = (hp.own_test_fraction, hp.calibration_fraction)
    own_test, calibration, fit = stratified_split(train.targets, fractions, seed)
    held = train.subset(calibration)
    if hp.calibrate_on_val:
        held = Dataset.concat(held, val)
    return Splits(train.subset(fit), held, train.subset(own_test), val)


def train_member(
    spec: ModelSpec, fit: Dataset, seed: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """One ensemble member, returned as its stored (fp16) state dict."""
    hp = spec.train
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SmallResNet(spec.architecture).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    batch_size = min(hp.batch_size, len(fit))
    steps = len(fit) // batch_size
    images = torch.from_numpy(fit.images).to(device)
    targets = torch.from_numpy(fit.targets).float().to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    ema = WeightAverage(model, hp.ema_decay)
    model.train()
    for epoch in range(hp.epochs):
        order = torch.from_numpy(rng.permutation(len(fit))).to(device)
        total = 0.0
        for step in range(steps):
            lr = hp.lr * cosine_lr(
                epoch * steps + step, hp.epochs * steps, hp.warmup_epochs * steps
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = order[step * batch_size : (step + 1) * batch_size]
            x = augment(images[index], hp.augment, rng)
            x, y = mixup(x, targets[index], hp.mixup_alpha, rng)
            with autocast:
                loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            ema.update(model)
            total += float(loss.detach())
        logger.info(
            "%s seed %d epoch %d/%d loss %.4f",
            spec.name,
            seed,
            epoch + 1,
            hp.epochs,
            total / max(steps, 1),
        )
    ema.copy_to(model)
    return ensemble.to_stored(model)


def _configure(hp: TrainSpec, device: torch.device) -> None:
    if device.type == "cpu":
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)


def _train_member_in_worker(spec: ModelSpec, job: MemberJob) -> dict[str, torch.Tensor]:
    """A CPU worker process: one thread, deterministic, logging to stderr like the parent."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _configure(spec.train, torch.device("cpu"))
    return train_member(spec, job.fit, job.seed, torch.device("cpu"))


def member_seeds(hp: TrainSpec) -> list[int]:
    """Each member's seed, derived from the run's seed."""
    return [hp.seed + 1000 * (m + 1) for m in range(hp.members)]


def fold_member_seeds(hp: TrainSpec, fold: int) -> list[int]:
    """The seeds of one fold's cross-fitting members (none is a final member's seed)."""
    return [hp.seed + 100_000 * (fold + 1) + 1000 * (m + 1) for m in range(hp.cross_fit_members)]


def train_members(
    spec: ModelSpec, jobs: list[MemberJob], device: torch.device
) -> list[dict[str, torch.Tensor]]:
    """Every member: on CUDA one after another; on CPU in ``workers`` single-thread processes.

    A member's weights depend only on its images and seed, so the result is the same for
    any number of worker processes.
    """
    if device.type != "cpu" or spec.train.workers <= 1 or len(jobs) == 1:
        return [train_member(spec, job.fit, job.seed, device) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(spec.train.workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(_train_member_in_worker, repeat(spec), jobs))


class CrossFit:
    """The folds of the fit images and each fold's members, trained on the other folds."""

    def __init__(self, spec: ModelSpec, fit: Dataset) -> None:
        self.spec = spec
        self.fit = fit
        self.folds = stratified_folds(fit.targets, spec.train.cross_fit_folds, spec.train.seed)

    def jobs(self) -> list[MemberJob]:
        """Fold by fold, each fold's members."""
        return [
            MemberJob(self.fit.subset(np.flatnonzero(self.folds != fold)), seed)
            for fold in range(self.spec.train.cross_fit_folds)
            for seed in fold_member_seeds(self.spec.train, fold)
        ]

    def out_of_fold_logits(
        self, stored: list[dict[str, torch.Tensor]], device: torch.device
    ) -> FloatArray:
        """Each fit image's mean logit over the members of its fold (which never saw it)."""
        per_fold = self.spec.train.cross_fit_members
        logits = np.empty(len(self.fit), dtype=np.float32)
        for fold in range(self.spec.train.cross_fit_folds):
            members = [
                ensemble.from_stored(s, self.spec.architecture, device)
                for s in stored[fold * per_fold : (fold + 1) * per_fold]
            ]
            rows = np.flatnonzero(self.folds == fold)
            logits[rows] = ensemble.mean_logits(
                members, self.fit.images[rows], tta_hflip=self.spec.tta_hflip, device=device
            )
        return logits


def train_model(
    name: str,
    data: Path,
    out: Path,
    *,
    seed: int | None = None,
    device: str | None = None,
    overrides: Overrides = Overrides(),
    command: str | None = None,
) -> ModelCard:
    """Train, calibrate and write ``model.pt`` and ``metadata.json`` into ``out``."""
    started = time.monotonic()
    spec = get_spec(name)
    hp = dataclasses.replace(
        spec.train,
        seed=spec.train.seed if seed is None else seed,
        epochs=overrides.epochs or spec.train.epochs,
        members=overrides.members or spec.train.members,
        cross_fit_folds=overrides.cross_fit or spec.train.cross_fit_folds,
    )
    spec = dataclasses.replace(spec, train=hp)
    torch_device = select_device(device)
    _configure(hp, torch_device)
    splits = make_splits(data, spec, hp.seed, overrides.limit)
    logger.info(
        "%s: fit %d, calibration %d, own test %d, val %d; %d members x %d epochs on %s",
        name,
        len(splits.fit),
        len(splits.calibration),
        len(splits.own_test),
        len(splits.val),
        hp.members,
        hp.epochs,
        torch_device,
    )
    cross_fit = CrossFit(spec, splits.fit) if hp.cross_fit_folds else None
    jobs = [MemberJob(splits.fit, seed) for seed in member_seeds(hp)]
    trained = train_members(spec, jobs + (cross_fit.jobs() if cross_fit else []), torch_device)
    stored = trained[: hp.members]
    members = [ensemble.from_stored(s, spec.architecture, torch_device) for s in stored]

    def logits(part: Dataset) -> FloatArray:
        return ensemble.mean_logits(
            members, part.images, tta_hflip=spec.tta_hflip, device=torch_device
        )

    scores = {"own_test": logits(splits.own_test)}
    if cross_fit is None:
        scores |= {"calibration": logits(splits.calibration), "val": logits(splits.val)}
    else:
        scores["calibration"] = cross_fit.out_of_fold_logits(trained[hp.members :], torch_device)
        rows = splits.val_rows
        scores["val"] = logits(splits.val) if rows is None else scores["calibration"][rows]
    a, b = (round(v, 6) for v in fit_platt(scores["calibration"], splits.calibration.targets))
    probabilities = {part: sigmoid(a * z + b) for part, z in scores.items()}
    threshold = choose_threshold(
        splits.calibration.targets, probabilities["calibration"], hp.min_specificity
    )
    metrics = {
        part: binary_metrics(getattr(splits, part).targets, probabilities[part], threshold)
        for part in ("own_test", "val", "calibration")
    }
    weights = ensemble.save_bytes(stored, spec.architecture)
    card = _card(
        spec,
        data,
        weights,
        (a, b),
        threshold,
        metrics,
        command or _command(name, data, hp.seed, overrides),
        str(torch_device),
        time.monotonic() - started,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / WEIGHTS_FILE).write_bytes(weights)
    (out / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    logger.info(
        "%s: wrote %s (%d bytes) and its card in %.0f s",
        name,
        WEIGHTS_FILE,
        len(weights),
        card.training.wall_time_s,
    )
    return card


def _command(name: str, data: Path, seed: int, overrides: Overrides) -> str:
    parts = [f"fhir-ai train {name} --data {data} --seed {seed}"]
    options = dataclasses.asdict(overrides).items()
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in options if v is not None]
    return " ".join(parts)


def _split_text(spec: ModelSpec) -> str:
    hp = spec.train
    if hp.cross_fit_folds:
        pool = f"the other {1 - hp.own_test_fraction:.0%}"
        val = "val figures are from the final members"
        if hp.calibrate_on_val:
            pool, val = pool + " plus the official val split", "val figures are out-of-fold"
        return (
            f"official train split stratified (seed {hp.seed}) into own test "
            f"{hp.own_test_fraction:.0%} and the rest; {pool} train every member; Platt "
            f"calibration and threshold on their out-of-fold logits ({hp.cross_fit_folds}-fold "
            f"cross-fitting, {hp.cross_fit_members} members per fold); {val}; the official "
            "test split was not seen"
        )
    fit = 1 - hp.own_test_fraction - hp.calibration_fraction
    calibration = f"{hp.calibration_fraction:.0%} of train"
    if hp.calibrate_on_val:
        calibration += " + the official val split"
    return (
        f"official train split stratified (seed {hp.seed}) into fit {fit:.0%}, calibration "
        f"{hp.calibration_fraction:.0%} and own test {hp.own_test_fraction:.0%}; Platt "
        f"calibration and threshold on {calibration}; official val split reported; the official "
        "test split was not seen"
    )


def _calibration_text(spec: ModelSpec) -> str:
    hp = spec.train
    if hp.cross_fit_folds:
        return (
            f"out-of-fold mean logits of every training image: {hp.cross_fit_folds}-fold "
            f"cross-fitting, {hp.cross_fit_members} members per fold trained like the final "
            "members on the other folds"
        )
    calibration = f"stratified {hp.calibration_fraction:.0%} hold-out of train"
    if hp.calibrate_on_val:
        calibration += " plus the official val split"
    return calibration


def _card(
    spec: ModelSpec,
    data: Path,
    weights: bytes,
    platt: tuple[float, float],
    threshold: float,
    metrics: dict[str, Metrics],
    command: str,
    device: str,
    wall_time_s: float,
) -> ModelCard:
    hp = spec.train
    hyperparameters: dict[str, float | int | str | bool | list[float] | list[int]] = {
        "batch_size": hp.batch_size,
        "optimizer": "AdamW",
        "lr": hp.lr,
        "lr_schedule": f"linear warm-up {hp.warmup_epochs} epoch(s), cosine to 0",
        "weight_decay": hp.weight_decay,
        "mixup_alpha": hp.mixup_alpha,
        "loss": "binary cross-entropy",
        "min_specificity": hp.min_specificity if hp.min_specificity is not None else "none",
        **(
            {"cross_fit_folds": hp.cross_fit_folds, "cross_fit_members": hp.cross_fit_members}
            if hp.cross_fit_folds
            else {}
        ),
        "cpu_workers": hp.workers,
        "threads_per_worker": 1,
        **{f"augment_{k}": _plain(v) for k, v in dataclasses.asdict(hp.augment).items()},
    }
    return ModelCard(
        name=spec.name,
        version=spec.version,
        title=spec.title,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        architecture=f"{hp.members}-member ensemble of {spec.architecture.describe()}",
        training=Training(
            data=data.name,
            data_sha256=file_sha256(data),
            split=_split_text(spec),
            seed=hp.seed,
            command=command,
            epochs=hp.epochs,
            members=hp.members,
            hyperparameters=hyperparameters,
            device=device,
            torch_version=torch.__version__,
            wall_time_s=round(wall_time_s, 1),
        ),
        input=spec.input,
        labels=spec.labels,
        calibration=Calibration(
            parameters={"a": platt[0], "b": platt[1]}, fitted_on=_calibration_text(spec)
        ),
        threshold=Threshold(
            value=threshold,
            rationale=spec.threshold_rationale.format(min_specificity=hp.min_specificity or 0),
        ),
        test_time_augmentation=("horizontal flip",) if spec.tta_hflip else (),
        metrics=metrics,
        intended_use=spec.intended_use,
        limitations=spec.limitations,
        references=spec.references,
    )


def _plain(value: object) -> float | int | str | bool | list[float]:
    if isinstance(value, tuple):
        return [float(v) for v in value]
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
