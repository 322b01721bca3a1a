"""Decoding and preprocessing of every transfer syntax and the real chest radiographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from fhir_ai.errors import DicomRejected
from fhir_ai.imaging.dicom_parse import read_dataset
from fhir_ai.imaging.pixel_checks import check_pixels
from fhir_ai.imaging.preprocess import (
    _histogram_percentiles,
    _stored_range,
    _to_display_per_pixel,
    frame_of,
    prepare,
    to_display,
    to_grayscale,
)

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
            assert prepared.overlay_base.shape == (512, 512), path.name  # never full size
            assert prepared.overlay_base.dtype == np.uint8
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
    """Decoding takes Pillow's libjpeg-turbo for these (4x faster); lossy JPEG decoders may
    differ by a grey level, never more."""
    path = shared_data / "dicom" / name
    reference = pydicom.dcmread(path)
    reference.pixel_array_options(decoding_plugin="pylibjpeg")

    decoded = read_dataset(path.read_bytes())

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


def test_a_cine_loop_decodes_only_its_middle_frame(shared_data: Path) -> None:
    path = shared_data / "dicom" / "transfer_syntaxes" / "examples_ybr_color.dcm"  # 30 frames
    whole = pydicom.dcmread(path).pixel_array
    dataset = pydicom.dcmread(path)
    middle = frame_of(dataset)
    assert np.array_equal(middle, to_grayscale(whole[15]))
    assert dataset._pixel_array is None  # the 30-frame array was never built


def test_what_ingestion_refuses_for_its_pixels_the_worker_refuses(shared_data: Path) -> None:
    refused = 0
    for path in sorted((shared_data / "dicom" / "broken").iterdir()):
        try:
            dataset = pydicom.dcmread(path)
        except Exception:  # not DICOM at all: refused before any pixel is looked at
            continue
        if "PixelData" not in dataset or "TransferSyntaxUID" not in dataset.file_meta:
            continue
        try:
            check_pixels(dataset)
        except DicomRejected as ingestion:
            with pytest.raises(DicomRejected) as worker:
                frame_of(pydicom.dcmread(path))
            assert worker.value.message == ingestion.message, path.name
            refused += 1
    assert refused >= 4


def test_rgb_becomes_luma() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    assert np.allclose(to_grayscale(rgb), 0.587 * 255)


def test_undecodable_pixels_are_refused(shared_data: Path) -> None:
    with pytest.raises(DicomRejected, match="cannot be decoded"):
        prepare((shared_data / "dicom" / "broken" / "966.dcm").read_bytes(), SIZE)


@pytest.mark.parametrize("folder", ["transfer_syntaxes", "chest_radiographs"])
def test_the_lookup_table_gives_the_pixel_by_pixel_display(shared_data: Path, folder: str) -> None:
    through_table = 0
    for path in _files(shared_data, folder):
        if path.suffix != ".dcm" or path.name in _SKIPPED:
            continue
        dataset = pydicom.dcmread(path)
        frame = frame_of(dataset)
        expected = _to_display_per_pixel(dataset, frame)
        display = to_display(dataset, frame)
        assert display.dtype == np.float32 and display.shape == expected.shape, path.name
        assert np.abs(display - expected).max() <= 1e-5, path.name
        through_table += _stored_range(frame) is not None
    assert through_table >= 3


def test_signed_rescaled_windowed_frame_through_the_table() -> None:
    rng = np.random.default_rng(5)
    dataset = pydicom.Dataset()
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsStored = 16
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope = "1"
    dataset.RescaleIntercept = "-1024"
    dataset.WindowCenter = "40"
    dataset.WindowWidth = "400"
    frame = rng.integers(-2000, 3000, size=(300, 260)).astype(np.int16)
    assert _stored_range(frame) == (int(frame.min()), int(frame.max()) - int(frame.min()) + 1)
    expected = _to_display_per_pixel(dataset, frame)
    assert np.abs(to_display(dataset, frame) - expected).max() <= 1e-6
    assert _stored_range(np.array([[0, 1 << 16]], dtype=np.int32)) is None  # too wide
    assert _stored_range(frame.astype(np.float32)) is None


def test_percentiles_from_a_histogram_are_numpys() -> None:
    rng = np.random.default_rng(9)
    levels = rng.normal(size=40).astype(np.float32)  # not sorted: a non-monotone LUT
    for counts in (rng.integers(0, 50, size=40), np.eye(40, dtype=np.intp)[7] * 3):
        values = np.repeat(levels, counts)
        for percents in ((0.5, 99.5), (0.0, 100.0), (37.0, 61.0)):
            expected = np.percentile(values, percents)
            got = _histogram_percentiles(levels, counts, percents)
            assert got == pytest.approx(tuple(expected), abs=1e-6)
