"""Which search index each resource type's stored rows were extracted with.

An upgrade may add or change search parameters, or how their rows are extracted; the
resources written before it then have missing or stale rows, and searches and patient
compartments (which follow reference parameters) miss them. Each type's index
fingerprint (:func:`fhir_ai.fhir.search.extract.index_fingerprint`) is recorded when its
rows are rebuilt, so ``fhir-ai db upgrade`` (which ``fhir-ai serve`` runs) reindexes
exactly the types an upgrade changed, and nothing otherwise.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from fhir_ai.store.schema import naive_utc_now, search_index_state


def recorded_fingerprints(connection: Connection) -> dict[str, str]:
    """The fingerprint each resource type's rows were last rebuilt with."""
    query = select(search_index_state.c.resource_type, search_index_state.c.fingerprint)
    return {str(kind): str(fingerprint) for kind, fingerprint in connection.execute(query)}


def record_fingerprints(connection: Connection, fingerprints: dict[str, str]) -> None:
    """Record that these types' rows are now extracted with these fingerprints."""
    if not fingerprints:
        return
    now = naive_utc_now()
    rows = [
        {"resource_type": kind, "fingerprint": fingerprint, "indexed_at": now}
        for kind, fingerprint in fingerprints.items()
    ]
    try:
        with connection.begin_nested():
            connection.execute(
                delete(search_index_state).where(
                    search_index_state.c.resource_type.in_(list(fingerprints))
                )
            )
            connection.execute(insert(search_index_state), rows)
    except IntegrityError:
        pass  # another process (also upgrading) recorded them meanwhile
