"""ImagingStudy.started from local DICOM date and time: a time only with its UTC offset."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_ai.imaging.imaging_study import imaging_study
from fhir_ai.settings import Settings
from fhir_ai.store.dicom import StoredInstance


def _instance(**attributes: str) -> StoredInstance:
    tags = {"StudyDate": "00080020", "StudyTime": "00080030", "TimezoneOffsetFromUTC": "00080201"}
    vrs = {"StudyDate": "DA", "StudyTime": "TM", "TimezoneOffsetFromUTC": "SH"}
    metadata: dict[str, Any] = {
        tags[name]: {"vr": vrs[name], "Value": [value]} for name, value in attributes.items()
    }
    return StoredInstance(
        "1.2.3.4", "1.2.3", "1.2.3.1", "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.1.2.1",
        "CR", 1, "key", 10, metadata,
    )  # fmt: skip


def _started(timezone: ZoneInfo | None = None, **attributes: str) -> str | None:
    study = imaging_study(
        "1.2.3", [_instance(**attributes)], "Patient/p", "Endpoint/e", lambda _: None, timezone
    )
    return study.get("started")


def test_a_time_is_given_with_the_instance_offset_or_the_configured_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert _started(StudyDate="20240115", StudyTime="101530.25", TimezoneOffsetFromUTC="-0500") == (
        "2024-01-15T10:15:30-05:00"
    )
    assert _started(paris, StudyDate="20240115", StudyTime="1015") == "2024-01-15T10:15:00+01:00"
    assert _started(paris, StudyDate="20240715", StudyTime="101530") == "2024-07-15T10:15:30+02:00"
    # the instance's own offset wins over the configured zone
    assert _started(
        paris, StudyDate="20240715", StudyTime="1015", TimezoneOffsetFromUTC="+0000"
    ) == ("2024-07-15T10:15:00+00:00")


def test_without_an_offset_or_zone_or_with_a_bad_time_only_the_date() -> None:
    assert _started(StudyDate="20240115", StudyTime="101530") == "2024-01-15"
    assert _started(ZoneInfo("UTC"), StudyDate="20240115", StudyTime="2460") == "2024-01-15"
    assert _started(ZoneInfo("UTC"), StudyDate="20240115") == "2024-01-15"
    assert _started(ZoneInfo("UTC"), StudyDate="2024011") is None


def test_an_unknown_zone_is_refused_by_the_settings() -> None:
    assert Settings(dicom_timezone="America/Chicago").dicom_timezone == "America/Chicago"
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        Settings(dicom_timezone="Mars/Olympus")
