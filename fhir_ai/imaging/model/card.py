"""Model cards: ``metadata.json`` beside each model's weights, read without torch.

The web process may import this module: it depends on pydantic only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fhir_ai.errors import NotFound

MODEL_NAMES: tuple[str, ...] = ("pneumonia-cxr", "breast-us")
SNOMED = "http://snomed.info/sct"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CARD_FILE = "metadata.json"
WEIGHTS_FILE = "model.pt"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Coding(_Frozen):
    """A code with its system and short display name."""

    system: str = SNOMED
    code: str
    display: str


class Label(_Frozen):
    """One output class: what it means in the training data and its SNOMED CT coding."""

    coding: Coding
    meaning: str
    dataset_label: int = Field(description="The class's label value in the MedMNIST npz.")


class Labels(_Frozen):
    """The positive finding (what the probability is about) and the negative class."""

    positive: Label
    negative: Label


class InputSpec(_Frozen):
    """What ``predict`` expects: N x channels x H x W float32 in ``value_range``."""

    size: tuple[int, int]
    channels: Literal[1] = 1
    value_range: tuple[float, float] = (0.0, 1.0)
    photometric: Literal["MONOCHROME2"] = "MONOCHROME2"
    photometric_note: str = "bright = dense (MONOCHROME1 must be inverted first)"
    resize: str = (
        "square centre crop of the short side, then area resize to size "
        "(how MedMNIST made its images)"
    )
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]


class Calibration(_Frozen):
    """Maps the ensemble's mean logit z to a probability: sigmoid(a * z + b) (Platt)."""

    method: Literal["platt"] = "platt"
    parameters: dict[str, float]
    fitted_on: str


class Threshold(_Frozen):
    """Calibrated probability at or above which the finding is called positive."""

    value: float = Field(ge=0.0, le=1.0)
    rationale: str


class Metrics(_Frozen):
    """Binary metrics at the card's threshold."""

    n: int
    auc: float
    accuracy: float
    sensitivity: float
    specificity: float
    prevalence: float | None = None


class Training(_Frozen):
    """How the weights were made; ``command`` reproduces them byte for byte on CPU."""

    data: str
    data_sha256: str
    split: str
    seed: int
    command: str
    epochs: int
    members: int
    hyperparameters: dict[str, float | int | str | bool | list[float] | list[int]]
    device: str
    torch_version: str
    wall_time_s: float


class ModelCard(_Frozen):
    """Everything a consumer needs to run, interpret and cite one model."""

    name: str
    version: str
    title: str
    weights_file: str = WEIGHTS_FILE
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    architecture: str
    training: Training
    input: InputSpec
    labels: Labels
    calibration: Calibration
    threshold: Threshold
    test_time_augmentation: tuple[str, ...] = ()
    metrics: dict[str, Metrics]
    intended_use: str
    limitations: tuple[str, ...]
    references: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """``<name> <version>``, as FHIR ``device.display``."""
        return f"{self.name} {self.version}"


def model_dir(name: str) -> Path:
    """The folder of a packaged model (weights and card)."""
    if name not in MODEL_NAMES:
        raise NotFound(f"unknown imaging model {name!r}; known: {', '.join(MODEL_NAMES)}")
    return WEIGHTS_DIR / name


def read_card(path: Path) -> ModelCard:
    """Read a card from a ``metadata.json`` file (or a folder holding one)."""
    if path.is_dir():
        path = path / CARD_FILE
    return ModelCard.model_validate_json(path.read_bytes())


@cache
def load_card(name: str) -> ModelCard:
    """The packaged model's card (cached per process: the files are package data)."""
    return read_card(model_dir(name))
