"""A real third-party FHIR client (fhirpy) against the running server over HTTP."""

from __future__ import annotations

import uuid

import pytest
from fhirpy import SyncFHIRClient

pytestmark = pytest.mark.integration


def test_fhirpy_creates_searches_and_reads(server_url: str) -> None:
    client = SyncFHIRClient(server_url)
    family = f"Fhirpy{uuid.uuid4().hex[:8]}"
    patient = client.resource(
        "Patient", name=[{"family": family, "given": ["Grace"]}], gender="female"
    )
    patient.save()
    assert patient.id

    report = client.resource(
        "DiagnosticReport",
        status="final",
        category=[{"coding": [{"system": "http://loinc.org", "code": "LP29684-5"}]}],
        code={"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
        subject=patient.to_reference(),
        effectiveDateTime="2024-05-01T10:00:00Z",
    )
    report.save()

    found = client.resources("Patient").search(family=family).fetch()
    assert [p.id for p in found] == [patient.id]
    reports = (
        client.resources("DiagnosticReport")
        .search(patient=patient.id, category="LP29684-5", date__ge="2024-01-01")
        .fetch_all()
    )
    assert [r.id for r in reports] == [report.id]
    assert client.resources("DiagnosticReport").search(patient=patient.id).count() == 1

    read = client.reference("Patient", patient.id).to_resource()
    assert read["name"][0]["family"] == family

    read["gender"] = "other"
    read.save()
    assert client.reference("Patient", patient.id).to_resource()["meta"]["versionId"] == "2"
    report.delete()
    assert client.resources("DiagnosticReport").search(patient=patient.id).count() == 0
