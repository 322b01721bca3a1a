"""``fhir-ai analyze``: files and folders in, Bundles and a summary table out."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_ai.cli import main
from fhir_ai.imaging.dicom_parse import read_dataset
from fhir_ai.imaging.model.inference import LoadedModel
from fhir_ai.imaging.offline import analyze_files, dicom_files
from fhir_ai.imaging.preprocess import frame_of, to_display
from fhir_ai.imaging.routing import ModelRouter
from fhir_ai.settings import Settings
from tests.dicom_helpers import distinct_studies

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


def test_analyze_a_folder_and_a_broken_file(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "dicom" / "chest_radiographs"
    broken = shared_data / "dicom" / "broken" / "zipMR.gz"
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["analyze", str(folder), str(broken), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "refused" in result.output and "gzip" in result.output
    assert "HIP" in result.output or "skipped" in result.output  # the hip radiographs
    bundles = sorted(out.glob("*.pneumonia-cxr.json"))
    assert len(bundles) >= 3
    bundle = json.loads(bundles[0].read_text())
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Device", "Binary", "Observation", "DiagnosticReport", "Provenance"]
    report = bundle["entry"][3]["resource"]
    assert report["imagingStudy"][0]["identifier"]["system"] == "urn:dicom:uid"


def test_memory_does_not_grow_with_the_studies_read(shared_data: Path, tmp_path: Path) -> None:
    """Every study stays open until the last file, so a group keeps model inputs only (the
    most suspicious image is decoded again for the overlay): 12 full-resolution radiographs,
    each its own study, peak at a few images' worth of memory, not 12 (19x before)."""
    sample = shared_data / "dicom/chest_radiographs/rsna_pneumonia_sample_jpegbaseline.dcm"
    folder = tmp_path / "in"
    folder.mkdir()
    for i, payload in enumerate(distinct_studies(sample.read_bytes(), 12)):
        (folder / f"{i:02d}.dcm").write_bytes(payload)
    dataset = read_dataset(sample.read_bytes())
    one_image = to_display(dataset, frame_of(dataset)).nbytes  # 1024 x 1024 floats
    router = ModelRouter.load(Settings().terminology_path())
    model = LoadedModel.load("pneumonia-cxr")
    tracemalloc.start()
    try:
        rows = analyze_files(dicom_files([folder]), router, lambda _: model, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [row.outcome in {"positive", "negative"} for row in rows] == [True] * 12
    assert len(list((tmp_path / "out").glob("*.pneumonia-cxr.json"))) == 12
    assert peak < 6 * one_image, f"peak {peak / one_image:.1f} images"


def test_a_file_gone_before_its_overlay_is_drawn_refuses_its_study(
    shared_data: Path, tmp_path: Path
) -> None:
    sample = shared_data / "dicom/chest_radiographs/rsna_pneumonia_sample_jpegbaseline.dcm"
    path = tmp_path / "one.dcm"
    path.write_bytes(sample.read_bytes())

    def read_then_removed() -> Iterator[Path]:
        yield path
        path.unlink()  # after the last file is read, before the studies are written

    model = LoadedModel.load("pneumonia-cxr")
    router = ModelRouter.load(Settings().terminology_path())
    rows = analyze_files(read_then_removed(), router, lambda _: model, tmp_path / "out")
    assert [(row.model, row.outcome) for row in rows] == [("pneumonia-cxr", "refused")]
    assert "one.dcm" in rows[0].detail
    assert not list((tmp_path / "out").glob("*.json"))
