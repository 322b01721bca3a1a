"""A job that stops on an unexpected error (not bad input, not the database) fails its
Task once with the error's type, instead of leaving it in progress, and the worker goes on."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_ai.store.objects import content_key
from tests.dicom_helpers import distinct_studies, stow_body
from tests.worker_helpers import JobStack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobStack]:
    with running_stack(tmp_path_factory.mktemp("job-defects"), "imaging,default") as built:
        yield built  # analyses start only through $analyze here


def _store(stack: JobStack, data: bytes) -> str:
    body, content_type = stow_body(data)
    client = stack.client
    assert client.post("/dicomweb/studies", data=body, content_type=content_type).status_code == 200
    return str(
        client.get("/fhir/ImagingStudy?_sort=-_lastUpdated&_count=1").json["entry"][0]["resource"][
            "id"
        ]
    )


def _analyze(stack: JobStack, study_id: str) -> dict[str, object]:
    response = stack.client.post(f"/fhir/ImagingStudy/{study_id}/$analyze")
    assert response.status_code == 202, response.json
    return stack.wait_task(response.headers["Content-Location"].rsplit("/", 1)[1])


def test_an_unexpected_error_fails_the_task_once_and_the_worker_goes_on(
    stack: JobStack, shared_data: Path
) -> None:
    sample = (shared_data / "dicom" / "chest_radiographs" / "highdicom_dx_image.dcm").read_bytes()
    broken, healthy = distinct_studies(sample, 2, prefix="DEFECT")
    study = _store(stack, broken)
    # The object store breaks under the stored instance: its file is now a folder.
    key = content_key(broken)
    stored = stack.settings.objects_dir() / key[:2] / key[2:4] / key
    stored.unlink()
    stored.mkdir()
    task = _analyze(stack, study)
    assert task["status"] == "failed", stack.log()
    reason = task["statusReason"]["text"]  # type: ignore[index]
    assert "internal error (IsADirectoryError)" in reason and "worker log" in reason
    assert "job stopped on an internal error" in stack.log()
    shutil.rmtree(stored)
    assert _analyze(stack, _store(stack, healthy))["status"] == "completed", stack.log()
