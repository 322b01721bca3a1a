"""PNG encoding of 8-bit RGB pixels, with one filter for the whole image.

Pillow's encoder picks a filter per row by trying all five (adaptive filtering): on a
512 x 512 heatmap overlay that search is half of the encoding time (13 ms at zlib level 1).
The "Up" filter (each row minus the row above) alone, computed in one numpy subtraction,
gives the same size on smooth images such as a radiograph with a blended heatmap (229
against 231 kB) in half the time (6.8 ms). The stream is a plain PNG (ISO/IEC 15948):
IHDR (8-bit truecolour, no interlace), one IDAT, IEND.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG filter type 2: Up
_TRUECOLOUR = 2
#: zlib level 1: most of level 9's saving on these images at a fraction of its time.
COMPRESS_LEVEL = 1


def encode_rgb(pixels: npt.NDArray[np.uint8], level: int = COMPRESS_LEVEL) -> bytes:
    """PNG bytes of ``pixels`` (H x W x 3, uint8)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 uint8 pixels, got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = _UP
    filtered[0, 1:] = rows[0]  # the row above the first is zeros
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG defines
    header = struct.pack(">IIBBBBB", width, height, 8, _TRUECOLOUR, 0, 0, 0)
    return b"".join(
        (
            SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(filtered.data, level)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
