"""``fhir-ai train`` and ``fhir-ai evaluate`` through click."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_ai.cli import main
from fhir_ai.imaging.model.card import ModelCard, read_card
from fhir_ai.imaging.model.evaluate import RESULT_KEYS

ENV = {"FHIR_AI_LOG_LEVEL": "WARNING"}


def test_evaluate_json_has_exactly_the_agreed_keys(npz_path: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        ["evaluate", "breast-us", "--data", str(npz_path["breast-us"]), "--split", "val", "--json"],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert tuple(payload) == RESULT_KEYS
    assert (payload["model"], payload["split"], payload["n"]) == ("breast-us", "val", 78)
    assert 0.0 <= payload["specificity"] <= 1.0


def test_evaluate_reads_the_official_test_split(official_npz: Path) -> None:
    args = ["evaluate", "pneumonia-cxr", "--data", str(official_npz), "--split", "test", "--json"]
    result = CliRunner().invoke(main, args, env=ENV)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert (payload["split"], payload["n"]) == ("test", 200)
    assert payload["auc"] > 0.9


def test_evaluate_without_a_test_split_says_so(npz_path: dict[str, Path]) -> None:
    args = ["evaluate", "breast-us", "--data", str(npz_path["breast-us"]), "--split", "test"]
    result = CliRunner().invoke(main, args, env=ENV)
    assert result.exit_code == 1
    assert "no test split" in result.output


def _train(model: str, data: Path, out: Path, *options: str) -> ModelCard:
    """``fhir-ai train`` of one short member; the card it wrote."""
    args = ["train", model, "--data", str(data), "--out", str(out), *options]
    result = CliRunner().invoke(main, [*args, "--epochs", "1", "--members", "1"], env=ENV)
    assert result.exit_code == 0, result.output
    return read_card(out)


@pytest.mark.slow
def test_train_writes_loadable_weights_and_card(npz_path: dict[str, Path], tmp_path: Path) -> None:
    data = npz_path["pneumonia-cxr"]
    card = _train("pneumonia-cxr", data, tmp_path, "--seed", "7", "--limit", "300")
    assert hashlib.sha256((tmp_path / "model.pt").read_bytes()).hexdigest() == card.weights_sha256
    assert card.training.seed == 7
    assert card.training.command.endswith("--seed 7 --epochs 1 --members 1 --limit 300")
    assert 40 <= card.metrics["own_test"].n <= 50
    args = ["evaluate", "pneumonia-cxr", "--data", str(data), "--split", "val", "--json"]
    evaluated = CliRunner().invoke(main, [*args, "--weights", str(tmp_path)], env=ENV)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["accuracy"] == card.metrics["val"].accuracy


@pytest.mark.slow
def test_cross_fitted_training_calibrates_out_of_fold(
    npz_path: dict[str, Path], tmp_path: Path
) -> None:
    options = ("--cross-fit", "3", "--limit", "100")
    card = _train("breast-us", npz_path["breast-us"], tmp_path, *options)
    assert card.training.command.endswith("--members 1 --limit 100 --cross-fit 3")
    assert card.training.hyperparameters["cross_fit_folds"] == 3
    assert "3-fold cross-fitting" in card.calibration.fitted_on
    own_test = card.metrics["own_test"].n
    assert card.metrics["calibration"].n == 100 - own_test + 78  # every other image, and val
