"""MedMNIST ``.npz`` loading, label mapping, the stratified hold-out split and folds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from fhir_ai.errors import InvalidRequest

Split = Literal["train", "val", "test"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Dataset:
    """Images N x 1 x H x W float32 in [0, 1] and targets N (1 = the positive finding)."""

    images: FloatArray
    targets: IntArray

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: npt.NDArray[np.int64]) -> Dataset:
        return Dataset(self.images[index], self.targets[index])

    @staticmethod
    def concat(*parts: Dataset) -> Dataset:
        return Dataset(
            np.concatenate([p.images for p in parts]), np.concatenate([p.targets for p in parts])
        )


def load_split(path: Path, split: Split, positive_label: int) -> Dataset:
    """One split of a MedMNIST npz (train/val files, or the official file with ``test_*``)."""
    with np.load(path) as npz:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [key for key in keys if key not in npz.files]
        if missing:
            raise InvalidRequest(
                f"{path.name} has no {split} split (missing {', '.join(missing)}; "
                f"keys: {', '.join(sorted(npz.files))})"
            )
        images, labels = npz[keys[0]], npz[keys[1]]
    return Dataset(to_unit_float(images), to_targets(labels, positive_label))


def to_unit_float(images: npt.NDArray[np.generic]) -> FloatArray:
    """uint8 N x H x W (or N x H x W x 1) -> float32 N x 1 x H x W in [0, 1]."""
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise InvalidRequest(f"expected N x H x W grey images, got shape {images.shape}")
    scaled = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    return np.ascontiguousarray(scaled[:, None].astype(np.float32))


def to_targets(labels: npt.NDArray[np.generic], positive_label: int) -> IntArray:
    """MedMNIST labels (N or N x 1) -> 1 where the label is ``positive_label``, else 0."""
    flat = np.asarray(labels).reshape(-1)
    targets: IntArray = (flat == positive_label).astype(np.int64)
    return targets


def stratified_split(
    targets: IntArray, fractions: tuple[float, ...], seed: int
) -> tuple[IntArray, ...]:
    """Index arrays: one per fraction, then the rest; each class is split alike."""
    rng = np.random.default_rng(seed)
    parts: list[list[IntArray]] = [[] for _ in range(len(fractions) + 1)]
    for value in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == value))
        bounds = np.round(np.cumsum(fractions) * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, bounds), strict=True):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(part)).astype(np.int64) for part in parts)


def stratified_folds(targets: IntArray, folds: int, seed: int) -> IntArray:
    """Fold number (0 to ``folds`` - 1) per image; each class dealt round-robin after a
    seeded shuffle, so every fold has the class balance of the whole."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(targets), dtype=np.int64)
    for value in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == value))
        assignment[members] = np.arange(len(members)) % folds
    return assignment


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
