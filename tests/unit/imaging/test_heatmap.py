"""fhir_ai.imaging.heatmap: the Grad-CAM overlay PNG of a report."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fhir_ai.imaging.heatmap import FLOOR_PERCENTILE, OPACITY, _jet, overlay_base, overlay_png


def _decoded(png: bytes) -> np.ndarray:  # type: ignore[type-arg]
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (512, 512))
    return np.asarray(image, dtype=np.int16)


def _display() -> np.ndarray:  # type: ignore[type-arg]
    """A 600 x 800 gradient (landscape: the overlay shows its square centre)."""
    rows, cols = np.mgrid[0:600, 0:800].astype(np.float32)
    return (rows + cols) / (600 + 800)


def _hot_corner() -> np.ndarray:  # type: ignore[type-arg]
    """An 8 x 8 map attending to the bottom-right corner only."""
    heatmap = np.zeros((8, 8), dtype=np.float32)
    heatmap[6:, 6:] = 1.0
    return heatmap


def test_unattended_regions_show_the_image_untinted_and_the_focus_in_red() -> None:
    pixels = _decoded(overlay_png(overlay_base(_display()), _hot_corner()))

    top_left = pixels[:128, :128]
    assert np.array_equal(top_left[..., 0], top_left[..., 1])  # grey: no tint
    assert np.array_equal(top_left[..., 1], top_left[..., 2])
    red, green, blue = pixels[500, 500]
    assert red - green > 50 and green == blue  # the maximum of the map: tinted red


def test_the_blend_matches_the_float_formula() -> None:
    """Reference: the overlay computed in float at 512 x 512, as first written."""
    display, heatmap = _display(), np.random.default_rng(3).random((7, 7), dtype=np.float32)
    square = display[:, 100:700]
    base = Image.fromarray(square).resize((512, 512), Image.Resampling.BILINEAR)
    weights = np.asarray(
        Image.fromarray(heatmap).resize((512, 512), Image.Resampling.BICUBIC), np.float32
    )
    floor = np.percentile(weights, FLOOR_PERCENTILE)
    focus = np.clip((weights - floor) / (weights.max() - floor), 0, 1) ** 0.7
    alpha = (OPACITY * focus)[..., np.newaxis]
    gray = np.clip(np.asarray(base, np.float32), 0, 1)[..., np.newaxis]
    expected = ((1 - alpha) * gray + alpha * _jet(0.55 + 0.45 * focus)) * 255

    difference = np.abs(_decoded(overlay_png(overlay_base(display), heatmap)) - expected)

    assert difference.max() <= 3.0  # 8-bit rounding of the image, the weights and the blend
    assert difference.mean() < 1.0
