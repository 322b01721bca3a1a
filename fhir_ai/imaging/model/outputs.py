"""What a model says of one image (torch-free, for the batcher and the analysis pipeline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class ImageAnalysis:
    """The calibrated probability of the positive finding, and where the model looked."""

    probability: float
    heatmap: npt.NDArray[np.float32]  # H x W (the input's size) in [0, 1]: Grad-CAM
