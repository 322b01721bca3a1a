"""Bundles the server returns: searchset and history."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.fhir.search.dates import format_instant
from fhir_ai.fhir.search.query import SearchQuery
from fhir_ai.store.repository import SearchResult, StoredResource

_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS_KEPT = ("resourceType", "id", "meta")


def full_url(base_url: str, stored: StoredResource) -> str:
    """The absolute URL of a resource."""
    return f"{base_url}/{stored.resource_type}/{stored.id}"


def searchset(query: SearchQuery, result: SearchResult, base_url: str) -> dict[str, Any]:
    """The searchset Bundle of one page of results."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = _links(query, result, base_url)
    entries = [_entry(base_url, s, "match", query.elements) for s in result.matches]
    entries += [_entry(base_url, s, "include", ()) for s in result.included]
    if query.ignored:
        ignored = ", ".join(sorted(set(query.ignored)))
        entries.append(
            {
                "resource": operation_outcome(
                    "not-supported", f"Search parameters ignored: {ignored}", "warning"
                ),
                "search": {"mode": "outcome"},
            }
        )
    if entries:
        bundle["entry"] = entries
    return bundle


def history(
    versions: list[tuple[StoredResource, str]],
    total: int,
    base_url: str,
    self_url: str,
) -> dict[str, Any]:
    """The history Bundle of one resource."""
    entries = []
    for stored, method in versions:
        entry: dict[str, Any] = {"fullUrl": full_url(base_url, stored)}
        if stored.content is not None:
            entry["resource"] = stored.content
        url = stored.resource_type if method == "POST" else f"{stored.resource_type}/{stored.id}"
        entry["request"] = {"method": method, "url": url}
        entry["response"] = {
            "status": {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}[method],
            "etag": stored.etag,
            "lastModified": format_instant(stored.last_updated),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def subset(content: dict[str, Any], elements: tuple[str, ...]) -> dict[str, Any]:
    """Keep only the named top-level elements (``_elements``), marked SUBSETTED."""
    kept = {k: v for k, v in content.items() if k in _ALWAYS_KEPT or k in elements}
    meta = dict(kept.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    kept["meta"] = meta
    return kept


def _entry(
    base_url: str, stored: StoredResource, mode: str, elements: tuple[str, ...]
) -> dict[str, Any]:
    content = stored.content or {}
    return {
        "fullUrl": full_url(base_url, stored),
        "resource": subset(content, elements) if elements else content,
        "search": {"mode": mode},
    }


def _links(query: SearchQuery, result: SearchResult, base_url: str) -> list[dict[str, str]]:
    params = [(k, v) for k, v in query.used if k not in ("_offset", "_count")]
    base = f"{base_url}/{query.resource_type}"

    def url(offset: int) -> str:
        paging = [("_count", str(query.count)), ("_offset", str(offset))]
        return f"{base}?{urlencode(params + paging)}"

    links = [{"relation": "self", "url": url(query.offset)}]
    if result.has_next:
        links.append({"relation": "next", "url": url(query.offset + query.count)})
    if query.offset > 0:
        links.append({"relation": "previous", "url": url(max(0, query.offset - query.count))})
    return links
