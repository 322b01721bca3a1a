"""Run a packaged model: calibrated probabilities and Grad-CAM heatmaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.visualize.class_activation_maps import GradCAM
from torch import nn

from fhir_ai.errors import FhirAiError, InvalidRequest
from fhir_ai.imaging.model import ensemble
from fhir_ai.imaging.model.card import ModelCard, model_dir, read_card
from fhir_ai.imaging.model.data import FloatArray, file_sha256
from fhir_ai.imaging.model.metrics import sigmoid
from fhir_ai.imaging.model.network import GRADCAM_LAYER, SmallResNet


class ModelIntegrityError(FhirAiError):
    """The weights on disk are not the ones the model card describes."""


class _TwoDimLogit(nn.Module):
    """Adapts a 1-logit network to the N x C output MONAI's Grad-CAM expects."""

    def __init__(self, net: SmallResNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)
        return logits.unsqueeze(1)


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Each map (N x 1 x H x W) scaled so its minimum is 0 and its maximum 1.

    Used instead of MONAI's ``default_normalizer``, which maps (min, max) to (1, 0): it
    flips the map, so the most attended regions would come out as the least.
    """
    flat = maps.reshape(len(maps), -1)
    low = flat.min(dim=1).values.reshape(-1, 1, 1, 1)
    span = flat.max(dim=1).values.reshape(-1, 1, 1, 1) - low
    return torch.where(span > 1e-8, (maps - low) / span.clamp_min(1e-8), 0.0)


def _grad_cam(member: SmallResNet) -> GradCAM:
    """MONAI Grad-CAM on the member's last activation (its hooks stay for the model's life).

    The wrapper is put in eval mode first: MONAI restores the wrapper's own mode after each
    call, and a fresh module's mode is training, which would switch batch norm to batch
    statistics for every later prediction.
    """
    return GradCAM(
        nn_module=_TwoDimLogit(member).eval(),
        target_layers=f"net.{GRADCAM_LAYER}",
        postprocessing=_unit_range,
    )


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A packaged ensemble on a device, with its card."""

    card: ModelCard
    device: torch.device
    members: tuple[SmallResNet, ...]
    cams: tuple[GradCAM, ...]

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
        return cls(card, torch_device, members, tuple(_grad_cam(member) for member in members))

    def _check(self, images: FloatArray, ndim: int) -> None:
        expected = (1, *self.card.input.size)
        if images.ndim != ndim or tuple(images.shape[-3:]) != expected:
            raise InvalidRequest(
                f"{self.card.name} expects {'N x ' if ndim == 4 else ''}"
                f"{' x '.join(map(str, expected))} images, got {tuple(images.shape)}"
            )

    def predict(self, batch: FloatArray) -> FloatArray:
        """Calibrated probability of the positive finding for each N x 1 x H x W image."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._check(batch, 4)
        logits = ensemble.mean_logits(
            self.members,
            batch,
            tta_hflip=bool(self.card.test_time_augmentation),
            device=self.device,
        )
        parameters = self.card.calibration.parameters
        return sigmoid(parameters["a"] * logits + parameters["b"]).astype(np.float32)

    def explain(self, image: FloatArray) -> FloatArray:
        """Grad-CAM heatmap H x W in [0, 1] for the positive logit (mean over members)."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        self._check(image, 3)
        heat: FloatArray = self.explain_batch(image[None])[0]
        return heat

    def explain_batch(self, images: FloatArray) -> FloatArray:
        """Grad-CAM heatmaps N x H x W in [0, 1], one backward pass per member for the batch.

        In eval mode the images do not interact, so each map equals its single-image map.
        """
        images = np.ascontiguousarray(images, dtype=np.float32)
        self._check(images, 4)
        x = torch.from_numpy(images).to(self.device)
        total = torch.zeros((x.shape[0], *x.shape[-2:]), device=self.device)
        for cam in self.cams:
            with torch.enable_grad():
                total += cam(x, class_idx=0)[:, 0].detach().float()
        heat = total / len(self.cams)
        flat = heat.reshape(len(heat), -1)
        low = flat.min(dim=1).values[:, None, None]
        span = flat.max(dim=1).values[:, None, None] - low
        scaled = torch.where(span > 1e-8, (heat - low) / span.clamp_min(1e-8), 0.0)
        return scaled.cpu().numpy().astype(np.float32)
