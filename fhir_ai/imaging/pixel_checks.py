"""Does the pixel data decode? The check STOW-RS runs before it stores an image.

Each failure names the rule (never a value); the checks that pass but find a
non-conformance return warnings.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import get_j2k_parameters
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

from fhir_ai.errors import DicomRejected
from fhir_ai.imaging.dicom_status import TRANSFER_SYNTAX_NOT_SUPPORTED

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_PIXEL_MODULE = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel")
_TURBO_JPEG = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit})


def check_pixels(dataset: Dataset) -> list[str]:
    """Decode every frame once; raise :class:`DicomRejected` or return warnings."""
    missing = [k for k in _PIXEL_MODULE if k not in dataset]
    if missing:
        raise DicomRejected(f"The Image Pixel module lacks {', '.join(missing)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frames = _pixel_array(dataset)
        except NotImplementedError as error:
            raise DicomRejected(
                "No decoder is available for this transfer syntax",
                failure_reason=TRANSFER_SYNTAX_NOT_SUPPORTED,
            ) from error
        except RuntimeError as error:
            raise DicomRejected(
                f"The compressed pixel data cannot be decoded ({_syntax_name(dataset)}): "
                "the codestream is corrupt or not conformant"
            ) from error
        except ValueError as error:
            raise DicomRejected(_value_reason(str(error))) from error
        except (AttributeError, KeyError, TypeError) as error:
            raise DicomRejected(
                f"The pixel data cannot be interpreted ({type(error).__name__}: an Image Pixel "
                "attribute is missing or inconsistent)"
            ) from error
    if frames.size == 0:
        raise DicomRejected("The pixel data is empty")
    return _conformance_warnings(dataset)


def _pixel_array(dataset: Dataset) -> Any:
    """The decoded frames (kept by pydicom for later ``pixel_array`` reads).

    8-bit grayscale JPEG goes to Pillow's libjpeg-turbo first: 4x faster than pylibjpeg's
    libjpeg (4 against 17 ms for a 1024 x 1024 radiograph; lossy JPEG decoders may differ
    by a grey level, which the standard allows). Whatever Pillow cannot decode, and every
    other image, is decoded by pydicom's plugins in their own order.
    """
    if (
        dataset.file_meta.get("TransferSyntaxUID") in _TURBO_JPEG
        and dataset.get("BitsAllocated") == 8
        and dataset.get("SamplesPerPixel") == 1
    ):
        dataset.pixel_array_options(decoding_plugin="pillow")
        try:
            return dataset.pixel_array
        except (NotImplementedError, RuntimeError, ValueError, OSError):
            dataset.pixel_array_options()  # back to every plugin
    return dataset.pixel_array


def _value_reason(message: str) -> str:
    if "less than expected" in message:
        return "The pixel data is shorter than Rows x Columns x Frames x BitsAllocated require"
    if "invalid literal" in message:
        return "An Image Pixel attribute (such as NumberOfFrames) is not a valid number"
    return "The pixel data does not match its Image Pixel attributes"


def _syntax_name(dataset: Dataset) -> str:
    return str(UID(str(dataset.file_meta.TransferSyntaxUID)).name)


def _conformance_warnings(dataset: Dataset) -> list[str]:
    """Non-conformances the decoder tolerated (JPEG 2000 only, where they are known)."""
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    if not syntax.is_compressed or "JPEG 2000" not in syntax.name:
        return []
    frames = int(str(dataset.get("NumberOfFrames") or 1))
    first = next(generate_frames(dataset.PixelData, number_of_frames=frames), b"")
    found: list[str] = []
    if first.startswith(_JP2_SIGNATURE):
        found.append(
            "The JPEG 2000 pixel data is wrapped in a JP2 file header, which the transfer "
            "syntax does not allow; it was decoded anyway"
        )
    signed = get_j2k_parameters(first).get("is_signed")
    if signed is not None and bool(signed) != bool(dataset.get("PixelRepresentation", 0)):
        found.append(
            "PixelRepresentation disagrees with the signedness of the JPEG 2000 codestream; "
            "the codestream was followed"
        )
    return found
