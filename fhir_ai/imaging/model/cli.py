"""The work behind ``fhir-ai train`` and ``fhir-ai evaluate`` (imports torch)."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_ai.imaging.model.card import model_dir
from fhir_ai.imaging.model.data import Split
from fhir_ai.imaging.model.evaluate import evaluate
from fhir_ai.imaging.model.train import Overrides, train_model


def run_train(
    model: str,
    data: Path,
    out: Path | None,
    seed: int | None,
    device: str,
    overrides: tuple[int | None, int | None, int | None, int | None],
) -> None:
    """Train into ``out`` (default: the packaged weights folder)."""
    epochs, members, limit, cross_fit = overrides
    train_model(
        model,
        data,
        out or model_dir(model),
        seed=seed,
        device=device,
        overrides=Overrides(epochs=epochs, members=members, limit=limit, cross_fit=cross_fit),
    )


def run_evaluate(
    model: str, data: Path, split: str, device: str, weights: Path | None, *, as_json: bool
) -> str:
    """The evaluation as one JSON object, or as aligned text."""
    split_name: Split = "test" if split == "test" else "val"
    result = evaluate(model, data, split_name, device=device, weights_dir=weights)
    if as_json:
        return json.dumps(result)
    return "\n".join(f"{key:12} {value}" for key, value in result.items())
