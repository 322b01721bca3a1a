"""The ensemble as stored in ``model.pt``: members' fp16 state dicts and their architecture."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fhir_ai.imaging.model.data import FloatArray
from fhir_ai.imaging.model.network import SmallResNet
from fhir_ai.imaging.model.specs import ArchitectureSpec

FORMAT = "fhir-ai-ensemble/1"


def select_device(device: str | None) -> torch.device:
    """``None``/``auto``: CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_stored(model: nn.Module) -> dict[str, torch.Tensor]:
    """A member's state dict as stored: floating tensors in fp16, on CPU, contiguous."""
    return {
        key: (value.detach().cpu().half() if value.is_floating_point() else value.cpu()).clone()
        for key, value in model.state_dict().items()
    }


def from_stored(
    state: dict[str, torch.Tensor], architecture: ArchitectureSpec, device: torch.device
) -> SmallResNet:
    """A member in eval mode, in fp32, from its stored state dict."""
    model = SmallResNet(architecture)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval()


def save_bytes(members: Sequence[dict[str, torch.Tensor]], architecture: ArchitectureSpec) -> bytes:
    """Serialise the ensemble (deterministic bytes for the same tensors)."""
    buffer = io.BytesIO()
    payload: dict[str, Any] = {
        "format": FORMAT,
        "architecture": dataclasses.asdict(architecture),
        "members": list(members),
    }
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_members(path: Path, device: torch.device) -> list[SmallResNet]:
    """Read ``model.pt`` (tensors only: ``weights_only=True``)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    arch = payload["architecture"]
    architecture = ArchitectureSpec(
        widths=tuple(arch["widths"]),
        blocks=tuple(arch["blocks"]),
        upsample=int(arch["upsample"]),
        dropout=float(arch["dropout"]),
        instance_norm_input=bool(arch.get("instance_norm_input", False)),
    )
    return [from_stored(state, architecture, device) for state in payload["members"]]


def mean_logits(
    members: Sequence[SmallResNet],
    images: FloatArray,
    *,
    tta_hflip: bool,
    device: torch.device,
    batch_size: int = 512,
) -> FloatArray:
    """The ensemble's mean logit per image (members x optional horizontal-flip TTA)."""
    outputs = [
        _passes(members, images[start : start + batch_size], tta_hflip, device, False)[0]
        for start in range(0, len(images), batch_size)
    ]
    if not outputs:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32)


def logits_and_heatmaps(
    members: Sequence[SmallResNet], images: FloatArray, *, tta_hflip: bool, device: torch.device
) -> tuple[FloatArray, FloatArray]:
    """:func:`mean_logits` of ``images`` (N x 1 x H x W) and, from the same pass, the
    members' mean Grad-CAM of each unflipped image (N x H x W in [0, 1]: each member's map
    upsampled to H x W and scaled to [0, 1], the mean scaled again)."""
    logits, heat = _passes(members, images, tta_hflip, device, True)
    return logits, unit_range(heat).cpu().numpy().astype(np.float32)


@torch.no_grad()
def _passes(
    members: Sequence[SmallResNet],
    images: FloatArray,
    tta_hflip: bool,
    device: torch.device,
    heatmaps: bool,
) -> tuple[FloatArray, torch.Tensor]:
    """Every member over every view: the mean logits and (if ``heatmaps``, else zeros) the
    sum of the members' unit-range Grad-CAM maps of the unflipped view."""
    batch = torch.from_numpy(images).to(device)
    views = [batch, batch.flip(-1)] if tta_hflip else [batch]
    logits = torch.zeros(batch.shape[0], device=device)
    heat = torch.zeros((batch.shape[0], *batch.shape[-2:]), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for member in members:
        for index, view in enumerate(views):
            with autocast:
                features = member.features(view)
                logits += member.classify(features).float()
            if heatmaps and index == 0:
                cam = member.grad_cam(features.float())[:, None]
                size = batch.shape[-2:]
                cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
                heat += unit_range(cam[:, 0])
    mean = (logits / (len(members) * len(views))).cpu().numpy().astype(np.float32)
    return mean, heat


def unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Each map (N x H x W) scaled so its minimum is 0 and its maximum 1 (all 0 if flat)."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(dim=1).values[:, None, None]
    span = flat.max(dim=1).values[:, None, None] - low
    return torch.where(span > 1e-8, (maps - low) / span.clamp_min(1e-8), 0.0)
