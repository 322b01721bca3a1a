"""Run a packaged model: calibrated probabilities and Grad-CAM heatmaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fhir_ai.errors import FhirAiError, InvalidRequest
from fhir_ai.imaging.model import ensemble
from fhir_ai.imaging.model.card import ModelCard, model_dir, read_card
from fhir_ai.imaging.model.data import FloatArray, file_sha256
from fhir_ai.imaging.model.metrics import sigmoid
from fhir_ai.imaging.model.network import SmallResNet
from fhir_ai.imaging.model.outputs import ImageAnalysis


class ModelIntegrityError(FhirAiError):
    """The weights on disk are not the ones the model card describes."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A packaged ensemble on a device, with its card."""

    card: ModelCard
    device: torch.device
    members: tuple[SmallResNet, ...]

    @classmethod
    def load(
        cls, name: str, device: str | None = None, *, weights_dir: Path | None = None
    ) -> LoadedModel:
        """Load ``name`` (CUDA when available unless ``device`` says otherwise).

        Raises :class:`ModelIntegrityError` when ``model.pt`` does not match the card's SHA-256.
        """
        folder = weights_dir or model_dir(name)
        card = read_card(folder)
        if card.name != name:
            raise ModelIntegrityError(f"{folder} holds model {card.name!r}, not {name!r}")
        weights = folder / card.weights_file
        digest = file_sha256(weights)
        if digest != card.weights_sha256:
            raise ModelIntegrityError(
                f"{weights} has SHA-256 {digest}; its card says {card.weights_sha256}"
            )
        torch_device = ensemble.select_device(device)
        members = tuple(ensemble.load_members(weights, torch_device))
        return cls(card, torch_device, members)

    def _batch(self, images: FloatArray) -> FloatArray:
        """``images`` as contiguous float32, refused unless N x 1 x H x W of the card's size."""
        batch = np.ascontiguousarray(images, dtype=np.float32)
        expected = (1, *self.card.input.size)
        if batch.ndim != 4 or tuple(batch.shape[-3:]) != expected:
            raise InvalidRequest(
                f"{self.card.name} expects N x {' x '.join(map(str, expected))} images, "
                f"got {tuple(batch.shape)}"
            )
        return batch

    def predict(self, batch: FloatArray) -> FloatArray:
        """Calibrated probability of the positive finding for each N x 1 x H x W image."""
        batch = self._batch(batch)
        logits = ensemble.mean_logits(
            self.members,
            batch,
            tta_hflip=bool(self.card.test_time_augmentation),
            device=self.device,
        )
        return self._calibrated(logits)

    def analyse(self, batch: FloatArray) -> list[ImageAnalysis]:
        """Each N x 1 x H x W image's calibrated probability and Grad-CAM heatmap (H x W in
        [0, 1], the members' mean, for the positive logit of the unflipped image), from one
        pass of each member over the batch."""
        batch = self._batch(batch)
        logits, heatmaps = ensemble.logits_and_heatmaps(
            self.members,
            batch,
            tta_hflip=bool(self.card.test_time_augmentation),
            device=self.device,
        )
        probabilities = self._calibrated(logits)
        return [ImageAnalysis(float(p), h) for p, h in zip(probabilities, heatmaps, strict=True)]

    def _calibrated(self, logits: FloatArray) -> FloatArray:
        parameters = self.card.calibration.parameters
        return sigmoid(parameters["a"] * logits + parameters["b"]).astype(np.float32)
