"""Model cards: load without torch, match their weights, carry the required facts."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from fhir_ai.errors import NotFound
from fhir_ai.imaging.model import MODEL_NAMES, load_card, model_dir
from fhir_ai.imaging.model.specs import get_spec
from tests.process_helpers import clean_env


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_matches_its_weights_file(name: str) -> None:
    card = load_card(name)
    weights = model_dir(name) / card.weights_file
    assert card.name == name
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card.weights_sha256
    assert weights.stat().st_size < 5 * 1024 * 1024


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_states_what_a_consumer_needs(name: str) -> None:
    card = load_card(name)
    spec = get_spec(name)
    assert card.version == spec.version
    assert card.input.size == (28, 28)
    assert card.input.photometric == "MONOCHROME2"
    assert card.labels == spec.labels
    assert 0.0 < card.threshold.value < 1.0
    assert card.threshold.rationale
    assert set(card.calibration.parameters) == {"a", "b"}
    assert {"own_test", "val"} <= set(card.metrics)
    assert card.metrics["own_test"].n > 0
    assert card.training.command.startswith(f"fhir-ai train {name} --data ")
    assert any("28x28" in limitation for limitation in card.limitations)


def test_snomed_codes_of_the_findings() -> None:
    pneumonia, breast = load_card("pneumonia-cxr").labels, load_card("breast-us").labels
    assert (pneumonia.positive.coding.code, pneumonia.positive.dataset_label) == ("233604007", 1)
    assert pneumonia.negative.coding.code == "281900007"
    assert (breast.positive.coding.code, breast.positive.dataset_label) == ("254837009", 0)
    assert breast.negative.dataset_label == 1
    assert pneumonia.positive.coding.system == "http://snomed.info/sct"


def test_pneumonia_card_names_the_pediatric_population() -> None:
    assert any("Pediatric" in text for text in load_card("pneumonia-cxr").limitations)


def test_unknown_model_is_not_found() -> None:
    with pytest.raises(NotFound):
        model_dir("knee-mri")


def test_reading_cards_does_not_import_torch() -> None:
    script = (
        "import json, sys\n"
        "from fhir_ai.imaging.model import load_card, MODEL_NAMES\n"
        "from fhir_ai.imaging.model.specs import SPECS\n"
        "[load_card(n) for n in MODEL_NAMES]\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'monai', 'numpy'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == []
