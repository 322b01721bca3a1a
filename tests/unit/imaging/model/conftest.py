"""Fixtures for the imaging model tests: the MedMNIST files in the shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA_FILES = {
    "pneumonia-cxr": "imaging/pneumoniamnist_trainval.npz",
    "breast-us": "imaging/breastmnist_trainval.npz",
}


@pytest.fixture(scope="session")
def npz_path(shared_data: Path) -> dict[str, Path]:
    """Each model's training npz; skips when the shared data is absent."""
    paths = {name: shared_data / rel for name, rel in DATA_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"MedMNIST files not found: {', '.join(missing)}")
    return paths


@pytest.fixture(scope="session")
def official_npz(npz_path: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file shaped like the official PneumoniaMNIST npz: train, val and ``test_*`` keys.

    The test split here is the first 200 val images (the real test split is withheld).
    """
    with np.load(npz_path["pneumonia-cxr"]) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["test_images"] = arrays["val_images"][:200]
    arrays["test_labels"] = arrays["val_labels"][:200]
    path = tmp_path_factory.mktemp("official") / "pneumoniamnist.npz"
    np.savez_compressed(path, **arrays)
    return path
