"""STOW-RS ingestion: the same bytes again change nothing, and restore lost bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ai.dicomweb.ingest import StowService
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import FileObjectStore, content_key
from tests.conftest import make_settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class NoStudyRecords:
    """StudyRecords stand-in: this test is about bytes and the index only."""

    def __init__(self) -> None:
        self.refreshed: list[str] = []

    def refresh(self, study_uid: str) -> list[str]:
        self.refreshed.append(study_uid)
        return []


def test_resending_changes_nothing_and_restores_lost_bytes(
    tmp_path: Path, shared_data: Path
) -> None:
    settings = make_settings(tmp_path)
    engine = create_db_engine(settings)
    upgrade_schema(engine)
    index, objects = DicomIndex(engine), FileObjectStore(tmp_path / "objects")
    records = NoStudyRecords()
    stow = StowService(objects, index, records)  # type: ignore[arg-type]
    data = (shared_data / "dicom" / "chest_radiographs" / "RG1_UNCR.dcm").read_bytes()
    first = stow.store([data], None)
    assert first.outcomes[0].stored and len(records.refreshed) == 1
    again = stow.store([data], None)
    assert again.outcomes[0].stored and len(records.refreshed) == 1  # nothing new
    lost = objects.path(content_key(data))
    assert lost is not None
    lost.unlink()
    stow.store([data], None)
    assert objects.get(content_key(data)) == data
