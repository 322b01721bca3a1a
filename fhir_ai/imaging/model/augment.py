"""Per-batch train-time augmentation in torch, driven by a seeded numpy generator."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from fhir_ai.imaging.model.specs import AugmentSpec


def augment(batch: torch.Tensor, spec: AugmentSpec, rng: np.random.Generator) -> torch.Tensor:
    """Random affine (rotation, scale, translation, flips) then brightness/contrast/gamma/noise."""
    return _intensity(_affine(batch, spec, rng), spec, rng)


def _affine(batch: torch.Tensor, spec: AugmentSpec, rng: np.random.Generator) -> torch.Tensor:
    n = batch.shape[0]
    angle = np.deg2rad(rng.uniform(-spec.rotate_deg, spec.rotate_deg, n))
    scale = rng.uniform(spec.scale[0], spec.scale[1], n)
    shift = rng.uniform(-2 * spec.translate, 2 * spec.translate, (n, 2))
    flip_x = np.where(spec.hflip & (rng.random(n) < 0.5), -1.0, 1.0)
    flip_y = np.where(spec.vflip & (rng.random(n) < 0.5), -1.0, 1.0)
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0] = np.cos(angle) / scale * flip_x
    theta[:, 0, 1] = -np.sin(angle) / scale
    theta[:, 1, 0] = np.sin(angle) / scale * flip_x
    theta[:, 1, 1] = np.cos(angle) / scale
    theta[:, 1, :2] *= flip_y[:, None]
    theta[:, :, 2] = shift
    grid = F.affine_grid(torch.from_numpy(theta).to(batch), list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _intensity(batch: torch.Tensor, spec: AugmentSpec, rng: np.random.Generator) -> torch.Tensor:
    n = batch.shape[0]

    def per_image(values: npt.NDArray[np.float64]) -> torch.Tensor:
        return torch.from_numpy(values.reshape(n, 1, 1, 1)).to(batch)

    contrast = per_image(rng.uniform(1 - spec.contrast, 1 + spec.contrast, n))
    brightness = per_image(rng.uniform(-spec.brightness, spec.brightness, n))
    gamma = per_image(np.exp(rng.uniform(-spec.gamma, spec.gamma, n)))
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    out = ((batch - mean) * contrast + mean + brightness).clamp(0.0, 1.0) ** gamma
    if spec.noise_std > 0:
        noise = rng.standard_normal(batch.shape).astype(np.float32) * spec.noise_std
        out = out + torch.from_numpy(noise).to(batch)
    return out.clamp(0.0, 1.0)


def mixup(
    images: torch.Tensor, targets: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each image with a random partner (one Beta(alpha, alpha) weight per batch)."""
    if alpha <= 0:
        return images, targets
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1 - lam)
    partner = torch.from_numpy(rng.permutation(images.shape[0])).to(images.device)
    mixed = lam * images + (1 - lam) * images[partner]
    return mixed, lam * targets + (1 - lam) * targets[partner]


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers (a no-op without decay)."""

    def __init__(self, model: torch.nn.Module, decay: float | None) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()} if decay else {}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        if self.decay is None:
            return
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.state[key].mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)
            else:
                self.state[key].copy_(value)

    def copy_to(self, model: torch.nn.Module) -> None:
        if self.decay is not None:
            model.load_state_dict(self.state)
