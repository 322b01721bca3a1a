"""Which Patient a stored study belongs to: the PatientID in the identifier system of its
issuer, never a Patient of another system that happens to share the number."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import build_app, make_settings
from tests.dicom_helpers import distinct_studies, stow_body
from tests.fhir_helpers import post

pytestmark = pytest.mark.integration
HOSPITAL = "urn:oid:2.16.840.1.113883.3.999.1"  # the MRN system of the hospital's EHR
DEFAULT = "urn:fhir-ai:dicom:patient-id"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return build_app(make_settings(tmp_path, dicom_patient_id_issuers={"HOSP": HOSPITAL}))


def _store(client: FlaskClient, sample: bytes, patient_id: str, issuer: str | None) -> str:
    dataset = pydicom.dcmread(io.BytesIO(distinct_studies(sample, 1)[0]))
    dataset.PatientID = patient_id
    if issuer is None:
        dataset.pop("IssuerOfPatientID", None)
    else:
        dataset.IssuerOfPatientID = issuer
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    body, content_type = stow_body(out.getvalue())
    response = client.post("/dicomweb/studies", data=body, content_type=content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    study = client.get(f"/fhir/ImagingStudy?identifier=urn:oid:{dataset.StudyInstanceUID}")
    return str(study.json["entry"][0]["resource"]["subject"]["reference"])


def test_a_study_joins_the_patient_of_its_issuers_system_and_no_other(
    app: Flask, shared_data: Path
) -> None:
    client = app.test_client()
    sample = (shared_data / "dicom" / "chest_radiographs" / "RG1_UNCR.dcm").read_bytes()
    mrn = {"resourceType": "Patient", "identifier": [{"system": HOSPITAL, "value": "12345"}]}
    known = f"Patient/{post(client, '/fhir/Patient', mrn).json['id']}"

    assert _store(client, sample, "12345", "HOSP") == known
    # the same number from an unmapped issuer, or with no issuer, is not this patient
    other = _store(client, sample, "12345", "OTHER-CLINIC")
    assert other != known
    assert _store(client, sample, "12345", None) == other  # both in the default system
    created = client.get(f"/fhir/{other}").json
    assert created["identifier"] == [{"system": DEFAULT, "value": "12345"}]
