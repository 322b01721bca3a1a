"""FHIR interactions over the store: validation, conditional logic and search.

The REST blueprint and the Bundle processor both call this; neither touches SQL.
Each method works inside a :class:`StoreSession` handed in by the caller, so one
transaction can span a whole transaction Bundle.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fhir_ai.errors import InvalidRequest, NotFound, PreconditionFailed
from fhir_ai.fhir.resources import validate_resource
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import SearchQuery, parse_query
from fhir_ai.settings import Settings
from fhir_ai.store.repository import SearchResult, StoredResource, StoreSession, WriteResult


class FhirService:
    """The FHIR interactions of the server."""

    def __init__(self, registry: SearchRegistry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    def check_type(self, resource_type: str) -> None:
        """Raise NotFound for a type the server does not support."""
        if not self.registry.supports(resource_type):
            raise NotFound(
                f"Resource type '{resource_type}' is not supported by this server",
                expression=resource_type,
            )

    def checked_resource(
        self, resource_type: str, body: Any, resource_id: str | None = None
    ) -> dict[str, Any]:
        """Check that ``body`` is a valid resource of ``resource_type`` (and ``resource_id``)."""
        self.check_type(resource_type)
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object (a FHIR resource)")
        if body.get("resourceType") != resource_type:
            raise InvalidRequest(
                f"resourceType '{body.get('resourceType')}' does not match the URL's "
                f"'{resource_type}'",
                expression="resourceType",
            )
        if resource_id is not None and body.get("id") != resource_id:
            raise InvalidRequest(
                f"The resource id '{body.get('id')}' does not match the URL's id '{resource_id}'",
                expression="id",
            )
        validate_resource(body)
        return body

    def parse_search(
        self, resource_type: str, params: list[tuple[str, str]], *, strict: bool
    ) -> SearchQuery:
        """Parse search parameters for ``resource_type``."""
        self.check_type(resource_type)
        return parse_query(
            self.registry,
            resource_type,
            params,
            strict=strict,
            default_count=self.settings.default_page_size,
            max_count=self.settings.max_page_size,
        )

    def search(self, session: StoreSession, query: SearchQuery, base_url: str) -> SearchResult:
        """Run a parsed search."""
        return session.search(query, base_url)

    def create(
        self,
        session: StoreSession,
        resource: dict[str, Any],
        base_url: str,
        if_none_exist: str | None = None,
    ) -> tuple[StoredResource, bool]:
        """Create, or with ``if_none_exist`` return the one match; (stored, created)."""
        if if_none_exist:
            existing = self.create_match(session, resource["resourceType"], if_none_exist, base_url)
            if existing:
                return session.read(resource["resourceType"], existing), False
        return session.create(resource), True

    def create_match(
        self, session: StoreSession, resource_type: str, if_none_exist: str, base_url: str
    ) -> str | None:
        """The id matched by If-None-Exist criteria, None for no match, 412 for several.

        Concurrent conditional creates with the same criteria are serialized
        (:meth:`lock_criteria`), so they create one resource, not one each.
        """
        self.lock_criteria(session, resource_type, if_none_exist)
        ids = self.matching_ids(session, resource_type, if_none_exist, base_url)
        if len(ids) > 1:
            raise PreconditionFailed(
                f"If-None-Exist criteria match {len(ids)} resources (at most one allowed)"
            )
        return ids[0] if ids else None

    def update(
        self,
        session: StoreSession,
        resource: dict[str, Any],
        resource_id: str,
        if_match: int | None = None,
    ) -> WriteResult:
        """Update (or create with the client's id)."""
        return session.update(resource, resource_id, if_match)

    def conditional_update(
        self, session: StoreSession, resource: dict[str, Any], criteria: str, base_url: str
    ) -> WriteResult:
        """PUT [type]?criteria: create if none match, update the one match, else 412."""
        self.lock_criteria(session, resource["resourceType"], criteria)
        ids = self.matching_ids(session, resource["resourceType"], criteria, base_url)
        if len(ids) > 1:
            raise PreconditionFailed(f"Conditional update criteria match {len(ids)} resources")
        if ids:
            if resource.get("id") not in (None, ids[0]):
                raise InvalidRequest("The resource id does not match the resource found")
            return session.update(resource, ids[0])
        if resource.get("id"):
            return session.update(resource, resource["id"])
        return WriteResult(session.create(resource), created=True)

    def conditional_delete(
        self, session: StoreSession, resource_type: str, criteria: str, base_url: str
    ) -> int:
        """DELETE [type]?criteria: delete the one match (0 is fine), 412 for several."""
        ids = self.matching_ids(session, resource_type, criteria, base_url)
        if len(ids) > 1:
            raise PreconditionFailed(f"Conditional delete criteria match {len(ids)} resources")
        for resource_id in ids:
            session.delete(resource_type, resource_id)
        return len(ids)

    @staticmethod
    def lock_criteria(session: StoreSession, resource_type: str, criteria: str) -> None:
        """Serialize, until the transaction ends, the writers that look for ``criteria``
        before creating: the second one waits, then finds what the first created (else
        two PostgreSQL transactions could each find nothing and each create one)."""
        session.lock(f"conditional:{resource_type}?{criteria.split('?', 1)[-1]}")

    def matching_ids(
        self, session: StoreSession, resource_type: str, criteria: str, base_url: str
    ) -> list[str]:
        """Up to two ids matching search ``criteria`` (enough to tell 0, 1 or many)."""
        criteria = criteria.split("?", 1)[-1]
        params = parse_qsl(criteria, keep_blank_values=True)
        if not params:
            raise InvalidRequest("Conditional criteria must not be empty")
        query = self.parse_search(resource_type, params, strict=True)
        return session.count_matches(query, base_url)
