"""A compact pre-activation ResNet for small single-channel images (pure torch).

CIFAR-style: a 3x3 stem at full resolution, stages of pre-activation basic blocks (the first
block of each later stage halves the resolution), then BN-ReLU (the Grad-CAM target layer,
:data:`GRADCAM_LAYER`), global average pooling and one logit. An optional bilinear upsampling
at the input lets a 28x28 image be seen at 56x56.

Because the head is global average pooling then one linear unit, Grad-CAM at the target
layer has a closed form (:meth:`SmallResNet.grad_cam`): the map comes with the forward pass
that gives the logit, with no backward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fhir_ai.imaging.model.specs import ArchitectureSpec

GRADCAM_LAYER = "final_act"


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity or 1x1 projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        result: torch.Tensor = out + skip
        return result


class SmallResNet(nn.Module):
    """Binary classifier: ``forward`` maps N x 1 x H x W in [0, 1] to N logits."""

    def __init__(self, spec: ArchitectureSpec) -> None:
        super().__init__()
        self.upsample = spec.upsample
        self.instance_norm_input = spec.instance_norm_input
        self.stem = nn.Conv2d(1, spec.widths[0], 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        channels = spec.widths[0]
        for stage, (width, depth) in enumerate(zip(spec.widths, spec.blocks, strict=True)):
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(PreActBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2d(channels)
        self.final_act = nn.ReLU()
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The activations of :data:`GRADCAM_LAYER` (N x C x h x w) for N x 1 x H x W inputs."""
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        if self.instance_norm_input:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) / (x.std(dim=(1, 2, 3), keepdim=True) + 0.05)
        else:
            x = (x - 0.5) / 0.25
        features: torch.Tensor = self.final_act(self.final_bn(self.blocks(self.stem(x))))
        return features

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """N logits from :meth:`features`."""
        logits: torch.Tensor = self.head(self.dropout(features.mean(dim=(2, 3))))
        return logits.squeeze(1)

    def grad_cam(self, features: torch.Tensor) -> torch.Tensor:
        """Grad-CAM (Selvaraju et al. 2017) of the logit at :data:`GRADCAM_LAYER`: N x h x w.

        The logit is ``head(mean(A))`` (dropout is the identity in eval mode), so its
        gradient with respect to ``A[k, i, j]`` is ``w[k] / (h * w)`` at every position; the
        Grad-CAM weights (the gradient's spatial mean) are the same, and the map is
        ``ReLU(sum_k w[k] A[k]) / (h * w)``: what MONAI's ``GradCAM`` computes with a
        backward pass (tested equal), here from the activations the logit was computed from.
        """
        weights = self.head.weight[0].to(features.dtype) / (features.shape[2] * features.shape[3])
        return F.relu(torch.einsum("nchw,c->nhw", features, weights))
