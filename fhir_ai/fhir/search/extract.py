"""Extract a resource's search index entries on write."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_ai.fhir.search.dates import MAX, MIN, parse_range
from fhir_ai.fhir.search.fhirpath import element_names
from fhir_ai.fhir.search.parameters import SearchParameter

MAX_VALUE = 255
#: The version of the row extraction below: bump it when a change here (not in the
#: definitions, which :func:`index_fingerprint` covers) would give stored resources
#: different rows, so upgrading reindexes them. 2: the patient dates index.
INDEX_FORMAT = 2
#: The parameter whose Patient references put a resource's dates in ``patient_dates``.
PATIENT_PARAMETER = "patient"
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


@dataclass(slots=True)
class IndexEntries:
    """The rows one resource contributes to each index table."""

    tokens: list[dict[str, Any]] = field(default_factory=list)
    references: list[dict[str, Any]] = field(default_factory=list)
    dates: list[dict[str, Any]] = field(default_factory=list)
    strings: list[dict[str, Any]] = field(default_factory=list)
    #: Every date row again under each Patient the ``patient`` parameter names: a
    #: patient's resources of a type in date order, without reading all of them.
    patient_dates: list[dict[str, Any]] = field(default_factory=list)


def normalize_string(value: str) -> str:
    """Case- and accent-insensitive form used by string search."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())[:MAX_VALUE]


def parse_reference(reference: str) -> tuple[str | None, str | None, str | None]:
    """Split a reference into (type, id, absolute url); unknown parts are None."""
    if reference.startswith("#"):
        return None, None, None
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return None, None, reference
    absolute = reference if "://" in reference else None
    parts = reference.split("://", 1)[-1].split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1][:MAX_VALUE], absolute
    return None, None, absolute or reference


def index_fingerprint(parameters: dict[str, SearchParameter]) -> str:
    """What a type's index rows depend on (its parameters and :data:`INDEX_FORMAT`), hashed:
    rows extracted under another fingerprint may be missing or stale."""
    basis = [INDEX_FORMAT, sorted((p.name, p.type, p.expression_text) for p in parameters.values())]
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()


def extract(resource: dict[str, Any], parameters: dict[str, SearchParameter]) -> IndexEntries:
    """Compute every index entry of ``resource`` for the given parameters."""
    entries = IndexEntries()
    present = element_names(resource)
    for name, parameter in parameters.items():
        if parameter.expression.roots.isdisjoint(present):
            continue  # most parameters of a type name elements this resource lacks
        values = list(parameter.expression.evaluate(resource))
        if not values:
            continue
        if parameter.type in ("token", "uri"):
            unique_tokens = {t for v in values for t in _tokens(v)}
            entries.tokens += [{"param": name, "system": s, "code": c} for s, c in unique_tokens]
        elif parameter.type == "reference":
            unique_refs = {r for v in values for r in _references(v)}
            entries.references += [
                {"param": name, "target_type": t, "target_id": i, "target_url": u}
                for t, i, u in unique_refs
            ]
        elif parameter.type == "date":
            unique_dates = {d for v in values for d in _dates(v)}
            entries.dates += [{"param": name, "low": lo, "high": hi} for lo, hi in unique_dates]
        elif parameter.type == "string":
            unique_strings = {s for v in values for s in _strings(v)}
            entries.strings += [
                {"param": name, "value": normalize_string(s), "exact": s[:1024]}
                for s in unique_strings
            ]
    entries.patient_dates = [
        {"patient_id": reference["target_id"], **date}
        for reference in entries.references
        if reference["param"] == PATIENT_PARAMETER
        and reference["target_type"] == "Patient"
        and reference["target_id"]
        for date in entries.dates
    ]
    return entries


def _tokens(value: Any) -> Iterator[tuple[str | None, str]]:
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str):
        yield None, value[:MAX_VALUE]
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value["coding"]:
                yield from _tokens(coding)
        elif "code" in value:
            yield _cut(value.get("system")), str(value["code"])[:MAX_VALUE]
        elif "value" in value:
            system = value.get("system")
            yield (
                (None if system in _CONTACT_SYSTEMS else _cut(system)),
                str(value["value"])[:MAX_VALUE],
            )


def _references(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    if isinstance(value, str):
        yield None, None, value[:1024]
    elif isinstance(value, dict) and isinstance(value.get("reference"), str):
        target_type, target_id, url = parse_reference(value["reference"])
        if target_type or url:
            yield target_type, target_id, url[:1024] if url else None


def _dates(value: Any) -> Iterator[tuple[datetime, datetime]]:
    try:
        if isinstance(value, str):
            yield parse_range(value)
        elif isinstance(value, dict) and ("start" in value or "end" in value):
            low = parse_range(value["start"])[0] if "start" in value else MIN
            high = parse_range(value["end"])[1] if "end" in value else MAX
            yield low, high
        elif isinstance(value, dict) and "event" in value:
            for event in value["event"]:
                yield parse_range(event)
    except ValueError:
        return


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in ("text", "family", "given", "prefix", "suffix", "line", "city", "district",
                    "state", "postalCode", "country", "display"):  # fmt: skip
            part = value.get(key)
            if isinstance(part, str):
                yield part
            elif isinstance(part, list):
                yield from (p for p in part if isinstance(p, str))


def _cut(system: Any) -> str | None:
    return str(system)[:MAX_VALUE] if system else None
