"""DICOMweb against a live server: STOW-RS with dicomweb-client, WADO-RS, QIDO-RS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from werkzeug.serving import make_server

from fhir_ai.dicomweb.multipart import split_parts
from tests.conftest import build_app, make_settings
from tests.dicom_helpers import stow_body

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]
CHEST = ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "rsna_pneumonia_sample_jpegbaseline.dcm")


@pytest.fixture(params=["sqlite", "postgresql"])
def app(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Flask:
    overrides: dict[str, object] = {"analyze_on_store": False}
    if request.param == "postgresql":  # one database per session: one object store with it
        overrides["database_url"] = request.getfixturevalue("postgres_url")
        tmp_path = tmp_path_factory.getbasetemp() / "dicomweb-postgresql"
    return build_app(make_settings(tmp_path, **overrides))


@pytest.fixture
def base(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def _dicom(shared_data: Path, folder: str, name: str) -> Path:
    return shared_data / "dicom" / folder / name


def _stow(base: str, *payloads: bytes) -> requests.Response:
    body, content_type = stow_body(*payloads)
    return requests.post(
        f"{base}/dicomweb/studies", data=body, headers={"Content-Type": content_type}, timeout=60
    )


def test_stow_with_dicomweb_client_creates_the_imaging_study(base: str, shared_data: Path) -> None:
    client = DICOMwebClient(f"{base}/dicomweb")
    datasets = [pydicom.dcmread(_dicom(shared_data, "chest_radiographs", n)) for n in CHEST]
    response = client.store_instances(datasets)
    stored = response.ReferencedSOPSequence
    assert len(stored) == 3 and "FailedSOPSequence" not in response
    for dataset in datasets:
        study = requests.get(
            f"{base}/fhir/ImagingStudy",
            params={"identifier": f"urn:dicom:uid|urn:oid:{dataset.StudyInstanceUID}"},
            timeout=10,
        ).json()
        assert study["total"] == 1
        resource = study["entry"][0]["resource"]
        uids = {i["uid"] for series in resource["series"] for i in series["instance"]}
        assert dataset.SOPInstanceUID in uids
        assert resource["modality"][0]["code"] == dataset.Modality
        assert resource["series"][0]["bodySite"]["code"] == "51185008"
        endpoint = requests.get(f"{base}/fhir/{resource['endpoint'][0]['reference']}", timeout=10)
        assert endpoint.json()["address"] == f"{base}/dicomweb"
        patient = requests.get(f"{base}/fhir/{resource['subject']['reference']}", timeout=10)
        assert patient.json()["identifier"][0]["value"] == dataset.PatientID


def test_resending_an_instance_changes_nothing(base: str, shared_data: Path) -> None:
    data = _dicom(shared_data, "chest_radiographs", "RG1_UNCR.dcm").read_bytes()
    assert _stow(base, data).status_code == 200
    uid = pydicom.dcmread(_dicom(shared_data, "chest_radiographs", "RG1_UNCR.dcm")).StudyInstanceUID
    query = {"identifier": f"urn:dicom:uid|urn:oid:{uid}"}
    before = requests.get(f"{base}/fhir/ImagingStudy", params=query, timeout=10).json()
    again = _stow(base, data)
    assert again.status_code == 200
    after = requests.get(f"{base}/fhir/ImagingStudy", params=query, timeout=10).json()
    version = [b["entry"][0]["resource"]["meta"]["versionId"] for b in (before, after)]
    assert version[0] == version[1] and after["total"] == 1


def test_wado_rs_returns_the_stored_bytes(base: str, shared_data: Path) -> None:
    path = _dicom(shared_data, "chest_radiographs", "RG1_J2KR.dcm")
    data = path.read_bytes()
    _stow(base, data)
    dataset = pydicom.dcmread(path)
    url = (
        f"{base}/dicomweb/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    response = requests.get(url, headers={"Accept": accept}, timeout=30)
    assert response.status_code == 200
    boundary = response.headers["Content-Type"].split("boundary=")[1]
    parts = list(split_parts(response.content, boundary))
    assert [p.body for p in parts] == [data]
    client = DICOMwebClient(f"{base}/dicomweb")
    retrieved = client.retrieve_instance(
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID
    )
    assert retrieved.SOPInstanceUID == dataset.SOPInstanceUID
    other = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'
    assert requests.get(url, headers={"Accept": other}, timeout=30).status_code == 406


def test_metadata_and_qido(base: str, shared_data: Path) -> None:
    client = DICOMwebClient(f"{base}/dicomweb")
    datasets = [pydicom.dcmread(_dicom(shared_data, "chest_radiographs", n)) for n in CHEST]
    client.store_instances(datasets)
    first = datasets[0]
    metadata = client.retrieve_study_metadata(first.StudyInstanceUID)
    assert metadata[0]["00080018"]["Value"] == [first.SOPInstanceUID]
    assert "BulkDataURI" in metadata[0]["7FE00010"]
    by_patient = client.search_for_studies(search_filters={"PatientID": first.PatientID})
    assert first.StudyInstanceUID in {s["0020000D"]["Value"][0] for s in by_patient}
    by_modality = client.search_for_studies(search_filters={"ModalitiesInStudy": "CR"})
    assert len(by_modality) >= 1 and all("CR" in s["00080061"]["Value"] for s in by_modality)
    none = client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"})
    assert none == []
    dated = client.search_for_studies(search_filters={"StudyDate": f"{first.StudyDate}"})
    assert first.StudyInstanceUID in {s["0020000D"]["Value"][0] for s in dated}


def test_broken_files_are_refused_with_reasons_and_the_server_stays_healthy(
    base: str, shared_data: Path
) -> None:
    for path in sorted((shared_data / "dicom" / "broken").iterdir()):
        response = _stow(base, path.read_bytes())
        assert response.status_code in (202, 409), path.name
        body = response.json()
        if response.status_code == 409:
            failed = body["00081198"]["Value"][0]
            assert failed["00081197"]["Value"][0] > 0, path.name
            comment = failed["00000902"]["Value"][0]
        else:  # stored, with the non-conformance as a warning
            item = body["00081199"]["Value"][0]
            assert item["00081196"]["Value"] == [0xB000], path.name
            comment = item["00000902"]["Value"][0]
        assert 0 < len(comment) <= 64, path.name  # ErrorComment is an LO
        # the whole reason, which ErrorComment may cut, is in a Warning header field
        assert comment.removesuffix("...") in response.headers["Warning"], path.name
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200


def test_mixed_request_is_202_and_a_wrong_media_type_is_415(base: str, shared_data: Path) -> None:
    good = _dicom(shared_data, "chest_radiographs", "RG1_UNCR.dcm").read_bytes()
    bad = _dicom(shared_data, "broken", "zipMR.gz").read_bytes()
    response = _stow(base, good, bad)
    assert response.status_code == 202
    assert len(response.json()["00081199"]["Value"]) == 1
    assert len(response.json()["00081198"]["Value"]) == 1
    wrong = requests.post(
        f"{base}/dicomweb/studies",
        data=good,
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )
    assert wrong.status_code == 415
    assert wrong.json()["resourceType"] == "OperationOutcome"


def test_study_in_the_url_must_match(base: str, shared_data: Path) -> None:
    good = _dicom(shared_data, "chest_radiographs", "RG1_UNCR.dcm").read_bytes()
    body, content_type = stow_body(good)
    response = requests.post(
        f"{base}/dicomweb/studies/1.2.3.4",
        data=body,
        headers={"Content-Type": content_type},
        timeout=30,
    )
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
