"""``fhir-ai evaluate``: a packaged model's metrics on one split of a MedMNIST npz."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir_ai.imaging.model.data import Split, load_split
from fhir_ai.imaging.model.inference import LoadedModel
from fhir_ai.imaging.model.metrics import binary_metrics

RESULT_KEYS = ("model", "version", "split", "n", "auc", "accuracy", "sensitivity", "specificity")


def evaluate(
    name: str,
    data: Path,
    split: Split,
    *,
    device: str | None = None,
    weights_dir: Path | None = None,
) -> dict[str, Any]:
    """``{model, version, split, n, auc, accuracy, sensitivity, specificity}``.

    Accuracy, sensitivity and specificity are at the card's threshold on calibrated
    probabilities; the images go through :meth:`LoadedModel.predict` exactly as in service.
    """
    model = LoadedModel.load(name, device, weights_dir=weights_dir)
    dataset = load_split(data, split, model.card.labels.positive.dataset_label)
    probabilities = model.predict(dataset.images)
    metrics = binary_metrics(dataset.targets, probabilities, model.card.threshold.value)
    return {
        "model": model.card.name,
        "version": model.card.version,
        "split": split,
        "n": metrics.n,
        "auc": metrics.auc,
        "accuracy": metrics.accuracy,
        "sensitivity": metrics.sensitivity,
        "specificity": metrics.specificity,
    }
