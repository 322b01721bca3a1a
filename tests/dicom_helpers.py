"""Distinct DICOM studies made from one real instance (new UIDs and PatientID each)."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import generate_uid


def distinct_studies(sample: bytes, count: int, prefix: str = "SYN") -> list[bytes]:
    """``count`` copies of ``sample``, each its own patient, study, series and instance."""
    made = []
    for i in range(count):
        dataset = pydicom.dcmread(io.BytesIO(sample))
        dataset.StudyInstanceUID = generate_uid()
        dataset.SeriesInstanceUID = generate_uid()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.PatientID = f"{prefix}-{i:05d}"
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=True)
        made.append(out.getvalue())
    return made


def stow_body(*payloads: bytes, boundary: str = "fhir-ai-boundary") -> tuple[bytes, str]:
    """A STOW-RS body and its Content-Type."""
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
            for p in payloads
        )
        + f"--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'
