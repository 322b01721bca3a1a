"""STOW-RS of real chest radiographs through dicomweb-client -> ImagingStudy -> Task
completed by a real imaging worker -> DiagnosticReport, Observation, Device, Provenance
and a heatmap PNG; the same study analysed again writes nothing new.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from werkzeug.serving import make_server

from fhir_ai.fhir.ai_results import read_report
from tests.worker_helpers import JobStack, running_stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
CHEST = ("rsna_pneumonia_sample_jpegbaseline.dcm", "RG1_UNCR.dcm", "RG1_J2KI.dcm")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobStack]:
    tmp = tmp_path_factory.mktemp("imaging-jobs")
    with running_stack(tmp, "imaging,default", analyze_on_store=True) as built:
        yield built


@pytest.fixture(scope="module")
def base(stack: JobStack) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, stack.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _get(base: str, path: str, **params: str) -> Any:
    response = requests.get(f"{base}/fhir/{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_stow_analysis_report(stack: JobStack, base: str, shared_data: Path) -> None:
    folder = shared_data / "dicom" / "chest_radiographs"
    datasets = [pydicom.dcmread(folder / name) for name in CHEST]
    response = DICOMwebClient(f"{base}/dicomweb").store_instances(datasets)
    assert len(response.ReferencedSOPSequence) == len(CHEST)
    tasks = _get(base, "Task", code="imaging-analysis")["entry"]
    assert len(tasks) == 2  # two studies (the RG1 files share theirs)
    for entry in tasks:
        task = stack.wait_task(entry["resource"]["id"])
        assert task["status"] == "completed", (task, stack.log())
        report = _get(base, task["output"][0]["valueReference"]["reference"])
        _check_report(base, report, task)


def _check_report(base: str, report: dict[str, Any], task: dict[str, Any]) -> None:
    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    assert report["imagingStudy"][0]["reference"] == task["focus"]["reference"]
    assert report["subject"] == task["for"]
    observation = _get(base, report["result"][0]["reference"])
    parsed = read_report(report, {report["result"][0]["reference"]: observation})
    finding = parsed.findings[0]
    assert finding.code == "233604007" and 0.0 <= (finding.probability or -1) <= 1.0
    assert finding.interpretation in ("POS", "NEG") and "pneumonia-cxr" in finding.model
    device = _get(base, observation["device"]["reference"])
    assert device["version"][0]["value"] and device["deviceName"]
    provenance = _get(base, "Provenance", target=report["id"])["entry"][0]["resource"]
    assert provenance["agent"][0]["who"]["reference"] == observation["device"]["reference"]
    assert provenance["entity"][0]["what"]["reference"] == task["focus"]["reference"]
    binary = _get(base, report["presentedForm"][0]["url"])
    image = Image.open(io.BytesIO(base64.b64decode(binary["data"])))
    assert image.format == "PNG" and image.size == (512, 512) and image.mode == "RGB"
    # Both studies are of adults (62 and 64 years), outside the pediatric training set
    assert report["conclusion"].startswith("Caution: The patient's age at the study (6")
    assert "outside the population pneumonia-cxr was trained on" in observation["note"][0]["text"]
    assert finding.limitations and "may not apply to this patient" in finding.limitations


def test_the_same_study_again_writes_nothing_new(
    stack: JobStack, base: str, shared_data: Path
) -> None:
    path = shared_data / "dicom" / "chest_radiographs" / CHEST[0]
    reports_before = _get(base, "DiagnosticReport", _summary="count")["total"]
    dataset = pydicom.dcmread(path)
    DICOMwebClient(f"{base}/dicomweb").store_instances([dataset])
    study = _get(
        base, "ImagingStudy", identifier=f"urn:dicom:uid|urn:oid:{dataset.StudyInstanceUID}"
    )
    study_id = study["entry"][0]["resource"]["id"]
    again = requests.post(f"{base}/fhir/ImagingStudy/{study_id}/$analyze", timeout=30)
    assert again.status_code == 202
    task_id = again.headers["Content-Location"].rsplit("/", 1)[1]
    assert stack.wait_task(task_id)["status"] == "completed"
    assert _get(base, "DiagnosticReport", _summary="count")["total"] == reports_before
    tasks = _get(base, "Task", focus=f"ImagingStudy/{study_id}")
    assert tasks["total"] == 1


def test_non_images_are_stored_not_analysed(base: str, shared_data: Path) -> None:
    path = shared_data / "dicom" / "non_image" / "test-SR.dcm"
    DICOMwebClient(f"{base}/dicomweb").store_instances([pydicom.dcmread(path)])
    uid = pydicom.dcmread(path).StudyInstanceUID
    study = _get(base, "ImagingStudy", identifier=f"urn:dicom:uid|urn:oid:{uid}")
    study_id = study["entry"][0]["resource"]["id"]
    assert _get(base, "Task", focus=f"ImagingStudy/{study_id}")["total"] == 0
    refused = requests.post(f"{base}/fhir/ImagingStudy/{study_id}/$analyze", timeout=30)
    assert refused.status_code == 422
    assert "No model applies" in refused.json()["issue"][0]["diagnostics"]
