"""The ensemble as stored in ``model.pt``: members' fp16 state dicts and their architecture."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
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


@torch.no_grad()
def mean_logits(
    members: Sequence[nn.Module],
    images: FloatArray,
    *,
    tta_hflip: bool,
    device: torch.device,
    batch_size: int = 512,
) -> FloatArray:
    """The ensemble's mean logit per image (members x optional horizontal-flip TTA)."""
    outputs: list[FloatArray] = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        views = [batch, batch.flip(-1)] if tta_hflip else [batch]
        total = torch.zeros(batch.shape[0], device=device)
        with autocast:
            for member in members:
                for view in views:
                    total += member(view).float()
        outputs.append((total / (len(members) * len(views))).cpu().numpy())
    if not outputs:
        return np.zeros(0, dtype=np.float32)
    result: FloatArray = np.concatenate(outputs).astype(np.float32)
    return result
