"""Transaction and batch Bundles (``POST [base]``), following FHIR R4 http.html §3.1.0.11.

A transaction runs in one database transaction: entries are processed in the order the
spec gives (DELETE, POST, PUT, GET), ``urn:uuid`` and other ``fullUrl`` references are
rewritten to the ids the server assigns, conditional references are resolved, and any
failure rolls everything back. A batch runs each entry on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fhir_ai.errors import FhirAiError, InvalidRequest, NotFound, PreconditionFailed
from fhir_ai.fhir.bundles import searchset
from fhir_ai.fhir.outcome import operation_outcome
from fhir_ai.fhir.search.compartment import PatientCompartment
from fhir_ai.fhir.search.dates import format_instant
from fhir_ai.fhir.service import FhirService
from fhir_ai.store.repository import ResourceStore, StoredResource, StoreSession, new_id

T = TypeVar("T")

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass(slots=True)
class Entry:
    """One parsed Bundle entry."""

    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version: str | None
    criteria: str | None
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None
    matches_existing: bool = False


class BundleProcessor:
    """Runs transaction and batch Bundles."""

    def __init__(self, service: FhirService, store: ResourceStore) -> None:
        self.service = service
        self.store = store

    def process(
        self,
        bundle: Any,
        base_url: str,
        with_resources: bool,
        compartment: PatientCompartment | None = None,
    ) -> dict[str, Any]:
        """Process a transaction or batch Bundle and return the response Bundle.

        ``compartment`` confines every entry's store session (see the store's module doc).
        """
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidRequest("POST to the base URL takes a Bundle")
        kind = bundle.get("type")
        if kind not in ("transaction", "batch"):
            raise InvalidRequest(f"Bundle.type must be transaction or batch, not {kind!r}")
        raw_entries = bundle.get("entry") or []
        if not isinstance(raw_entries, list):
            raise InvalidRequest("Bundle.entry must be a list")
        if kind == "transaction":
            responses = self._transaction(raw_entries, base_url, with_resources, compartment)
        else:
            responses = [self._batch_entry(i, e, base_url, with_resources, compartment)
                         for i, e in enumerate(raw_entries)]  # fmt: skip
        return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": responses}

    # -- transaction ---------------------------------------------------------------
    def _transaction(
        self,
        raw_entries: list[Any],
        base_url: str,
        with_resources: bool,
        compartment: PatientCompartment | None,
    ) -> list[dict[str, Any]]:
        entries = [_with_entry_context(i, partial(_parse_entry, i, e, base_url))
                   for i, e in enumerate(raw_entries)]  # fmt: skip
        responses: dict[int, dict[str, Any]] = {}
        with self.store.session(compartment=compartment) as session:
            identities = self._assign_identities(session, entries, base_url)
            for entry in entries:
                if entry.resource is not None:
                    resolve = partial(
                        self._resolve_references, session, entry, identities, base_url
                    )
                    _with_entry_context(entry.index, resolve)
            for entry in sorted(entries, key=lambda e: _ORDER[e.method]):
                execute = partial(self._execute, session, entry, base_url, with_resources)
                responses[entry.index] = _with_entry_context(entry.index, execute)
        return [responses[i] for i in range(len(entries))]

    def _assign_identities(
        self, session: StoreSession, entries: list[Entry], base_url: str
    ) -> dict[str, str]:
        """Map each entry's fullUrl to the ``Type/id`` it will have."""
        identities: dict[str, str] = {}
        for entry in entries:
            if entry.method == "POST":
                target = partial(self._post_target, session, entry, base_url)
                _with_entry_context(entry.index, target)
            elif entry.method == "PUT" and entry.criteria:
                target = partial(self._conditional_put_target, session, entry, base_url)
                _with_entry_context(entry.index, target)
            if entry.full_url and entry.resource_id and entry.method in ("POST", "PUT"):
                identities[entry.full_url] = f"{entry.resource_type}/{entry.resource_id}"
        return identities

    def _post_target(self, session: StoreSession, entry: Entry, base_url: str) -> None:
        """Give a POST its new id, or the id of the one resource its ifNoneExist matches."""
        existing = None
        if entry.if_none_exist:
            existing = self.service.create_match(
                session, entry.resource_type, entry.if_none_exist, base_url
            )
        entry.resource_id = existing or new_id()
        entry.matches_existing = existing is not None

    def _conditional_put_target(self, session: StoreSession, entry: Entry, base_url: str) -> None:
        """Turn ``PUT [type]?criteria`` into a PUT of the one match, or of a new id."""
        assert entry.resource is not None and entry.criteria is not None
        self.service.lock_criteria(session, entry.resource_type, entry.criteria)
        ids = self.service.matching_ids(session, entry.resource_type, entry.criteria, base_url)
        if len(ids) > 1:
            raise PreconditionFailed(f"Conditional update criteria match {len(ids)} resources")
        entry.resource_id = ids[0] if ids else entry.resource.get("id") or new_id()
        entry.resource["id"] = entry.resource_id
        entry.criteria = None

    def _resolve_references(
        self, session: StoreSession, entry: Entry, identities: dict[str, str], base_url: str
    ) -> None:
        def resolve(reference: str) -> str:
            if reference in identities:
                return identities[reference]
            if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
                raise InvalidRequest(
                    f"Reference {reference} matches no fullUrl in the transaction",
                    expression="reference",
                )
            if "?" in reference and not reference.startswith(("http:", "https:")):
                return self._conditional_reference(session, reference, base_url)
            return reference

        assert entry.resource is not None
        entry.resource = _rewrite_references(entry.resource, resolve, identities)

    def _conditional_reference(self, session: StoreSession, reference: str, base_url: str) -> str:
        resource_type, _, criteria = reference.partition("?")
        ids = self.service.matching_ids(session, resource_type, criteria, base_url)
        if len(ids) != 1:
            raise InvalidRequest(
                f"Conditional reference {reference} matches {len(ids)} resources, not one"
            )
        return f"{resource_type}/{ids[0]}"

    def _execute(
        self,
        session: StoreSession,
        entry: Entry,
        base_url: str,
        with_resources: bool,
    ) -> dict[str, Any]:
        if entry.method in ("GET", "HEAD"):
            return self._read_entry(session, entry, base_url)
        if entry.method == "DELETE":
            if entry.criteria:
                self.service.conditional_delete(
                    session, entry.resource_type, entry.criteria, base_url
                )
            else:
                assert entry.resource_id is not None
                _delete_quietly(session, entry.resource_type, entry.resource_id)
            return {"response": {"status": "204 No Content"}}
        resource = self.service.checked_resource(entry.resource_type, entry.resource)
        if entry.method == "POST":
            assert entry.resource_id is not None
            if entry.matches_existing:
                stored, status = session.read(entry.resource_type, entry.resource_id), 200
            else:
                stored, status = session.create(resource, entry.resource_id), 201
        elif entry.criteria:
            result = self.service.conditional_update(session, resource, entry.criteria, base_url)
            stored, status = result.stored, 201 if result.created else 200
        else:
            if resource.get("id") != entry.resource_id:
                raise InvalidRequest("The resource id does not match the entry's request.url")
            assert entry.resource_id is not None
            result = self.service.update(session, resource, entry.resource_id, entry.if_match)
            stored, status = result.stored, 201 if result.created else 200
        return _write_response(stored, status, base_url, with_resources)

    def _read_entry(self, session: StoreSession, entry: Entry, base_url: str) -> dict[str, Any]:
        if entry.resource_id is None:
            params = parse_qsl(entry.criteria or "", keep_blank_values=True)
            query = self.service.parse_search(entry.resource_type, params, strict=False)
            result = self.service.search(session, query, base_url)
            return {"resource": searchset(query, result, base_url),
                    "response": {"status": "200 OK"}}  # fmt: skip
        if entry.version:
            stored = session.vread(entry.resource_type, entry.resource_id, int(entry.version))
        else:
            stored = session.read(entry.resource_type, entry.resource_id)
        return _write_response(stored, 200, base_url, True)

    # -- batch ---------------------------------------------------------------------
    def _batch_entry(
        self,
        index: int,
        raw: Any,
        base_url: str,
        with_resources: bool,
        compartment: PatientCompartment | None,
    ) -> dict[str, Any]:
        try:
            entry = _parse_entry(index, raw, base_url)
            with self.store.session(compartment=compartment) as session:
                if entry.method == "POST":
                    self._post_target(session, entry, base_url)
                return self._execute(session, entry, base_url, with_resources)
        except FhirAiError as error:
            return {
                "response": {
                    "status": str(error.http_status),
                    "outcome": operation_outcome(error.issue_code, error.message),
                }
            }


def written_references(response: dict[str, Any]) -> list[str]:
    """The ``Type/id`` each entry of a transaction-response Bundle wrote, in entry order."""
    return ["/".join(e["response"]["location"].split("/")[:2]) for e in response["entry"]]


def _parse_entry(index: int, raw: Any, base_url: str) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise InvalidRequest("every entry needs a request")
    request = raw["request"]
    method = str(request.get("method", "")).upper()
    if method not in _ORDER or method == "PATCH":
        raise InvalidRequest(f"request.method {method or '(none)'} is not supported")
    url = str(request.get("url", ""))
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    path, _, criteria = url.partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise InvalidRequest("request.url is empty")
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise InvalidRequest("entry.resource must be a JSON object")
    if method in ("POST", "PUT") and resource is None:
        raise InvalidRequest(f"a {method} entry needs a resource")
    if_match = request.get("ifMatch")
    return Entry(
        index=index,
        method=method,
        resource_type=parts[0],
        resource_id=parts[1] if len(parts) > 1 else None,
        version=parts[3] if len(parts) > 3 and parts[2] == "_history" else None,
        criteria=criteria or None,
        resource=dict(resource) if resource is not None else None,
        full_url=raw.get("fullUrl"),
        if_none_exist=request.get("ifNoneExist"),
        if_match=int(str(if_match).removeprefix("W/").strip('"')) if if_match else None,
    )


def _with_entry_context(index: int, action: Callable[[], T]) -> T:
    try:
        return action()
    except FhirAiError as error:
        error.message = f"Bundle entry {index}: {error.message}"
        error.args = (error.message,)
        raise
    except ValueError as error:
        raise InvalidRequest(f"Bundle entry {index}: {error}") from None


def _rewrite_references(
    value: Any, resolve: Callable[[str], str], identities: dict[str, str]
) -> Any:
    """Resolve every ``reference``; replace other uri/url values naming an entry's fullUrl
    (an Attachment.url pointing at a Binary in the same Bundle, say), as R4 requires.
    """
    if isinstance(value, dict):
        return {
            k: resolve(v)
            if k == "reference" and isinstance(v, str)
            else _rewrite_references(v, resolve, identities)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_references(v, resolve, identities) for v in value]
    if isinstance(value, str) and value.startswith("urn:uuid:") and value in identities:
        return identities[value]
    return value


def _delete_quietly(session: StoreSession, resource_type: str, resource_id: str) -> None:
    try:
        session.delete(resource_type, resource_id)
    except NotFound:
        return


def _write_response(
    stored: StoredResource, status: int, base_url: str, with_resource: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "fullUrl": f"{base_url}/{stored.resource_type}/{stored.id}",
        "response": {
            "status": _STATUS_TEXT[status],
            "location": f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}",
            "etag": stored.etag,
            "lastModified": format_instant(stored.last_updated),
        },
    }
    if with_resource:
        entry["resource"] = stored.content
    return entry
