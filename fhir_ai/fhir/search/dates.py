"""FHIR date, dateTime and instant values as half-open UTC ranges ``[low, high)``.

A value stands for the whole interval its precision implies: ``2024`` is the year,
``2024-03-01`` the day, ``2024-03-01T10:15:00Z`` the second. Date-only values are
taken as UTC days. Results are naive datetimes in UTC, as the index stores them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fhir_ai.errors import InvalidRequest

_DATE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(?P<fraction>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
MIN = datetime(1, 1, 1)
MAX = datetime(9999, 12, 31, 23, 59, 59)


def parse_range(value: str) -> tuple[datetime, datetime]:
    """Parse a FHIR date/dateTime/instant into its UTC range; raise ValueError if invalid."""
    match = _DATE.match(value.strip())
    if not match:
        raise ValueError(f"not a FHIR date: {value!r}")
    parts = match.groupdict()
    year = int(parts["year"])
    if parts["month"] is None:
        return datetime(year, 1, 1), datetime(year + 1, 1, 1) if year < 9999 else MAX
    month = int(parts["month"])
    if parts["day"] is None:
        low = datetime(year, month, 1)
        high = datetime(year + month // 12, month % 12 + 1, 1)
        return low, high
    day = datetime(year, month, int(parts["day"]))
    if parts["hour"] is None:
        return day, day + timedelta(days=1)
    micro = int(float(parts["fraction"]) * 1_000_000) if parts["fraction"] else 0
    low = day.replace(
        hour=int(parts["hour"]),
        minute=int(parts["minute"]),
        second=int(parts["second"] or 0),
        microsecond=micro,
    )
    step = (
        timedelta(minutes=1)
        if parts["second"] is None
        else timedelta(microseconds=1)
        if parts["fraction"]
        else timedelta(seconds=1)
    )
    tz = parts["tz"]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        low -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return low, low + step


def parse_search_date(value: str, parameter: str) -> tuple[datetime, datetime]:
    """Parse a search value's date part, raising a 400 with the parameter named."""
    try:
        return parse_range(value)
    except ValueError:
        raise InvalidRequest(
            f"Invalid date {value!r} in search parameter '{parameter}'", expression=parameter
        ) from None


def to_utc_naive(moment: datetime) -> datetime:
    """Convert an aware datetime to naive UTC (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def format_instant(moment: datetime) -> str:
    """Format a naive-UTC datetime as a FHIR instant."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_moment(value: object) -> datetime | None:
    """The start of a FHIR date/dateTime as naive UTC, or None if ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_range(value)[0]
    except ValueError:
        return None
