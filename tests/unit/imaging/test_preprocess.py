"""Decoding and preprocessing of every transfer syntax and the real chest radiographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from fhir_ai.errors import DicomRejected
from fhir_ai.imaging.preprocess import decode, frame_of, prepare, to_display, to_grayscale

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SIZE = (28, 28)
_SKIPPED = {"HTJ2KLossless_08_RGB.dcm", "HTJ2K_08_RGB.dcm", "JPEGLSNearLossless_16.dcm"}


def _files(shared_data: Path, folder: str) -> list[Path]:
    return sorted((shared_data / "dicom" / folder).iterdir())


@pytest.mark.parametrize("folder", ["transfer_syntaxes", "chest_radiographs"])
def test_every_transfer_syntax_decodes_to_the_right_shape(shared_data: Path, folder: str) -> None:
    syntaxes = set()
    for path in _files(shared_data, folder):
        data = path.read_bytes()
        dataset = pydicom.dcmread(path)
        syntaxes.add(str(dataset.file_meta.TransferSyntaxUID))
        prepared = prepare(data, SIZE) if path.name not in _SKIPPED else None
        frame = frame_of(dataset)
        assert frame.shape == (dataset.Rows, dataset.Columns), path.name
        if prepared is not None:
            assert prepared.display.shape == (dataset.Rows, dataset.Columns), path.name
            assert prepared.model_input.shape == (1, *SIZE), path.name
            assert prepared.model_input.dtype == np.float32
            assert 0.0 <= prepared.model_input.min() <= prepared.model_input.max() <= 1.0
    assert len(syntaxes) >= (14 if folder == "transfer_syntaxes" else 5)


@pytest.mark.parametrize(
    "name",
    [
        "chest_radiographs/rsna_pneumonia_sample_jpegbaseline.dcm",
        "chest_radiographs/rsna_sample_fake_MONOCHROME1.dcm",
        "transfer_syntaxes/JPEGBaseline_1s_1f_u_08_08.dcm",
    ],
)
def test_8_bit_grey_jpeg_decodes_as_pylibjpeg_does_within_a_grey_level(
    shared_data: Path, name: str
) -> None:
    """decode() takes Pillow's libjpeg-turbo for these (4x faster); lossy JPEG decoders may
    differ by a grey level, never more."""
    path = shared_data / "dicom" / name
    reference = pydicom.dcmread(path)
    reference.pixel_array_options(decoding_plugin="pylibjpeg")

    decoded = decode(path.read_bytes())

    difference = np.abs(decoded.pixel_array.astype(int) - reference.pixel_array.astype(int))
    assert decoded.pixel_array.shape == reference.pixel_array.shape
    assert difference.max() <= 1 and difference.mean() < 0.05


def test_monochrome1_is_inverted(shared_data: Path) -> None:
    folder = shared_data / "dicom" / "chest_radiographs"
    normal = pydicom.dcmread(folder / "rsna_pneumonia_sample_jpegbaseline.dcm")
    flipped = pydicom.dcmread(folder / "rsna_sample_fake_MONOCHROME1.dcm")
    a = to_display(normal, frame_of(normal))
    b = to_display(flipped, frame_of(flipped))
    assert np.allclose(a + b, 1.0, atol=1e-5)


def test_monochrome1_chest_has_bright_bones_and_dark_lungs(shared_data: Path) -> None:
    dataset = pydicom.dcmread(shared_data / "dicom" / "chest_radiographs" / "RG1_UNCR.dcm")
    image = to_display(dataset, frame_of(dataset))
    rows, cols = image.shape
    lungs = image[rows // 3 : rows // 2, cols // 5 : cols // 3].mean()  # right lung field
    spine = image[rows // 3 : rows // 2, cols // 2 - 40 : cols // 2 + 40].mean()
    assert spine > lungs  # MONOCHROME2 after inversion: dense = bright


def test_multi_frame_takes_the_middle_frame(shared_data: Path) -> None:
    dataset = pydicom.dcmread(shared_data / "dicom" / "transfer_syntaxes" / "emri_small.dcm")
    assert np.array_equal(frame_of(dataset), dataset.pixel_array[5])


def test_rgb_becomes_luma() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    assert np.allclose(to_grayscale(rgb), 0.587 * 255)


def test_undecodable_pixels_are_refused(shared_data: Path) -> None:
    with pytest.raises(DicomRejected, match="cannot be decoded"):
        prepare((shared_data / "dicom" / "broken" / "966.dcm").read_bytes(), SIZE)
