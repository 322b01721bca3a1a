"""``fhir-ai analyze``: files and folders in, Bundles and a summary table out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_ai.cli import main

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
