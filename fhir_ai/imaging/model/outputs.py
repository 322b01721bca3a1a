"""What a model says of images, and the port the pipeline runs models through (torch-free,
for the batcher and the analysis pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fhir_ai.imaging.model.card import ModelCard


@dataclass(frozen=True, slots=True)
class ImageAnalysis:
    """The calibrated probability of the positive finding, and where the model looked."""

    probability: float
    heatmap: npt.NDArray[np.float32]  # H x W (the input's size) in [0, 1]: Grad-CAM


class ImagingModel(Protocol):
    """A loaded classifier (``model.inference.LoadedModel``, or one batched across job
    threads, ``imaging.batching.BatchedModel``)."""

    @property
    def card(self) -> ModelCard:
        """The model's card (name, version, input size, threshold)."""

    def analyse(self, batch: npt.NDArray[np.float32]) -> list[ImageAnalysis]:
        """Each N x 1 x H x W input's calibrated probability of the positive finding and its
        Grad-CAM map (H x W in [0, 1])."""
