"""FHIR dates as UTC ranges."""

from __future__ import annotations

from datetime import datetime

import pytest

from fhir_ai.errors import InvalidRequest
from fhir_ai.fhir.search.dates import format_instant, parse_range, parse_search_date


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024", datetime(2024, 1, 1), datetime(2025, 1, 1)),
        ("2024-12", datetime(2024, 12, 1), datetime(2025, 1, 1)),
        ("2024-02-29", datetime(2024, 2, 29), datetime(2024, 3, 1)),
        ("2024-03-01T10:15Z", datetime(2024, 3, 1, 10, 15), datetime(2024, 3, 1, 10, 16)),
        ("2024-03-01T10:15:00+02:00", datetime(2024, 3, 1, 8, 15), datetime(2024, 3, 1, 8, 15, 1)),
        ("2024-03-01T10:15:00.5Z", datetime(2024, 3, 1, 10, 15, 0, 500000),
         datetime(2024, 3, 1, 10, 15, 0, 500001)),
    ],
)  # fmt: skip
def test_precision_sets_the_range(value: str, low: datetime, high: datetime) -> None:
    assert parse_range(value) == (low, high)


@pytest.mark.parametrize("value", ["", "24", "2024-13", "2023-02-29", "2024-01-01T25:00Z", "now"])
def test_invalid_dates(value: str) -> None:
    with pytest.raises(ValueError):
        parse_range(value)
    with pytest.raises(InvalidRequest, match="date"):
        parse_search_date(value, "date")


def test_format_instant() -> None:
    assert format_instant(datetime(2024, 1, 2, 3, 4, 5, 678900)) == "2024-01-02T03:04:05.678Z"
