"""The PNG encoder: Pillow (an independent decoder) reads back exactly the pixels given."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from fhir_ai.imaging.png import SIGNATURE, encode_rgb


def _decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (5, 1, 3), (37, 53, 3), (512, 512, 3)])
def test_round_trip(shape: tuple[int, int, int]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_rgb(pixels)
    assert data.startswith(SIGNATURE)
    assert np.array_equal(_decoded(data), pixels)


def test_rows_that_wrap_around() -> None:
    """Up-filtered bytes are differences modulo 256 (0 under 255 and back)."""
    pixels = np.zeros((4, 3, 3), dtype=np.uint8)
    pixels[1::2] = 255
    assert np.array_equal(_decoded(encode_rgb(pixels)), pixels)


def test_a_view_that_is_not_contiguous() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = pixels[::2, ::3]
    assert np.array_equal(_decoded(encode_rgb(view)), view)


def test_every_row_uses_the_up_filter() -> None:
    pixels = np.full((6, 4, 3), 9, dtype=np.uint8)
    data = encode_rgb(pixels)
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    raw = zlib.decompress(data[start : start + length])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(6, 4 * 3 + 1)
    assert (rows[:, 0] == 2).all()
    assert (rows[1:, 1:] == 0).all()  # identical rows: nothing left after the filter


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)],
)
def test_other_arrays_refused(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_rgb(pixels)
