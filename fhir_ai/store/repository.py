"""The resource store: versioned writes with their search index, reads, history, search.

Every public write method runs inside the caller's :class:`StoreSession`, which is one
database transaction: a resource, its version row and its index rows commit together.

A session may be confined to one patient's compartment (a request made with a SMART
``patient/`` scope, see :mod:`fhir_ai.security.scopes`). For the types it confines, the
session then sees and changes only resources in the compartment, decided from the
reference index inside the same statements (no extra query, no decoding of JSON):

* reads, vreads and histories of a resource outside it raise ``NotFound``, exactly as for
  an unknown id, so the answer does not reveal that the resource exists. A deleted
  resource has no index rows; it is in the compartment its last live version was in, so
  the patient's own deleted record reads as ``Gone`` (410), shows its history, can be
  deleted again (a no-op) and recreated, and another patient's stays ``NotFound``;
* searches, conditional matches and ``_include``/``_revinclude`` results leave out what is
  outside it (the compartment is one more ANDed criterion);
* a create or update whose new content is outside it, and an update of a stored resource
  (deleted included) that is outside it, raise ``Forbidden``; a delete of a resource
  outside it raises ``NotFound``. A Patient is writable only as the patient itself.

History and vread are decided by the current version's compartment (a deleted resource's:
its last live version's): the versions of a resource now in the compartment are shown whole.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    delete,
    false,
    func,
    insert,
    select,
    text,
    true,
    update,
)

from fhir_ai.errors import Forbidden, Gone, NotFound, PreconditionFailed
from fhir_ai.fhir.search import sql
from fhir_ai.fhir.search.compartment import PatientCompartment
from fhir_ai.fhir.search.dates import format_instant
from fhir_ai.fhir.search.extract import IndexEntries, extract, index_fingerprint
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import Include, SearchQuery
from fhir_ai.ids import time_ordered_uuid
from fhir_ai.store.bulk import insert_rows
from fhir_ai.store.database import READ_ONLY
from fhir_ai.store.index_state import record_fingerprints, recorded_fingerprints
from fhir_ai.store.schema import (
    naive_utc_now,
    resource_versions,
    resources,
    search_dates,
    search_patient_dates,
    search_references,
    search_strings,
    search_tokens,
)

logger = logging.getLogger("fhir_ai.store")
#: How often a search index rebuild says how far it is, in seconds.
REINDEX_PROGRESS_S = 10.0
_INDEX_TABLES = (
    ("tokens", search_tokens),
    ("references", search_references),
    ("dates", search_dates),
    ("strings", search_strings),
    ("patient_dates", search_patient_dates),
)


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of a resource as stored (content is None for a deletion)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    content: dict[str, Any] | None

    @property
    def etag(self) -> str:
        """The weak ETag of this version."""
        return f'W/"{self.version_id}"'


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a write: the stored version and whether it was created."""

    stored: StoredResource
    created: bool


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of matches, the included resources, and what is known of the total."""

    matches: list[StoredResource]
    included: list[StoredResource]
    total: int | None
    has_next: bool


def new_id() -> str:
    """A server-assigned logical id: a time-ordered UUID (see :mod:`fhir_ai.ids`)."""
    return time_ordered_uuid()


class ResourceStore:
    """Opens store sessions on the database."""

    def __init__(self, engine: Engine, registry: SearchRegistry) -> None:
        self.engine = engine
        self.registry = registry

    @contextmanager
    def session(
        self,
        *,
        read_only: bool = False,
        flush_wal: bool = True,
        compartment: PatientCompartment | None = None,
    ) -> Iterator[StoreSession]:
        """One database transaction: committed on success, rolled back on any error.

        ``compartment`` confines the session to one patient's compartment (module doc).

        ``read_only`` sessions never take SQLite's write lock (readers run beside writers).
        ``flush_wal=False`` lets PostgreSQL acknowledge the commit before its WAL reaches
        disk (``synchronous_commit=off``): a database crash may lose the last few hundred
        milliseconds of such writes, never corrupt them; for records written off the
        request path (audit events), not for clinical data.
        """
        with self.engine.connect() as connection:
            if read_only:
                connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                if not flush_wal and connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield StoreSession(connection, self.registry, compartment)

    def reindex(self, resource_type: str | None = None, batch_size: int = 500) -> int:
        """Extract the search index rows of every live resource again (of one type, or of
        all), in batches of one transaction each; returns how many were reindexed.

        Needed when the search parameter definitions change (a new parameter, a fixed
        expression): resources written before have no rows, or stale ones, for it, so
        searches (and patient compartments, which follow reference parameters) miss them.
        Writers may run meanwhile: a batch holds its rows' index for its transaction only.
        The types' index fingerprints are recorded once all their rows are rebuilt
        (:mod:`fhir_ai.store.index_state`).
        """
        kinds = [resource_type] if resource_type else self.registry.resource_types
        done = self._reindex_rows([resource_type] if resource_type else None, batch_size)
        self._record_fingerprints(kinds)
        return done.total()

    def stale_index_types(self) -> list[str]:
        """The supported types whose rows were not rebuilt with their current fingerprint
        (never, on a database written before fingerprints were recorded)."""
        with self.engine.connect() as connection:
            recorded = recorded_fingerprints(connection)
        return [
            kind
            for kind in self.registry.resource_types
            if recorded.get(kind) != self.index_fingerprint(kind)
        ]

    def refresh_index(self, batch_size: int = 500) -> dict[str, int]:
        """Reindex the stale types (:meth:`stale_index_types`); how many of each.

        One pass over the resource table, whatever the number of stale types: an upgrade
        that changes how every type is indexed (``INDEX_FORMAT``) makes all of them stale,
        and a pass per type would read the whole table once for each.
        """
        stale = self.stale_index_types()
        if not stale:
            return {}
        done = self._reindex_rows(stale, batch_size)
        self._record_fingerprints(stale)
        return {kind: done[kind] for kind in stale}

    def index_fingerprint(self, resource_type: str) -> str:
        """What the rows of ``resource_type`` extracted now depend on, hashed."""
        return index_fingerprint(self.registry.parameters(resource_type))

    def _record_fingerprints(self, kinds: list[str]) -> None:
        with self.engine.begin() as connection:
            record_fingerprints(connection, {kind: self.index_fingerprint(kind) for kind in kinds})

    def _reindex_rows(self, kinds: list[str] | None, batch_size: int) -> Counter[str]:
        """Reindex the live resources of ``kinds`` (None: of every type) in ``pk`` order,
        a batch per transaction; how many of each type. Says how far it is every
        :data:`REINDEX_PROGRESS_S` (a large database takes minutes)."""
        done: Counter[str] = Counter()
        after = 0
        reported = time.monotonic()
        while True:
            with self.session() as session:
                rows = session.connection.execute(
                    select(resources.c.pk, resources.c.resource_type, resources.c.content)
                    .where(
                        resources.c.pk > after,
                        resources.c.deleted == false(),
                        *([resources.c.resource_type.in_(kinds)] if kinds is not None else []),
                    )
                    .order_by(resources.c.pk)
                    .limit(batch_size)
                    .with_for_update()
                ).all()
                if not rows:
                    return done
                session.reindex([(row.pk, row.resource_type, row.content) for row in rows])
            done.update(row.resource_type for row in rows)
            after = rows[-1].pk
            if time.monotonic() - reported >= REINDEX_PROGRESS_S:
                reported = time.monotonic()
                logger.info(
                    "search index rebuild: %d resources so far (up to row %d)",
                    done.total(),
                    after,
                )


class StoreSession:
    """Reads and writes inside one transaction (confined to ``compartment`` if given)."""

    def __init__(
        self,
        connection: Connection,
        registry: SearchRegistry,
        compartment: PatientCompartment | None = None,
    ) -> None:
        self.connection = connection
        self.registry = registry
        self.compartment = compartment

    def lock(self, key: str) -> None:
        """Serialize writers on ``key`` until this transaction ends.

        A PostgreSQL advisory lock; SQLite's writers are serial already (BEGIN IMMEDIATE).
        """
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )

    # -- reads ---------------------------------------------------------------------
    def read(self, resource_type: str, resource_id: str) -> StoredResource:
        """The current version, or NotFound / Gone."""
        row = self._current(resource_type, resource_id, confined=True)
        if row is None:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        if row.deleted:
            raise Gone(f"{resource_type}/{resource_id} was deleted")
        return StoredResource(
            resource_type, resource_id, row.version_id, row.last_updated, row.content
        )

    def vread(self, resource_type: str, resource_id: str, version_id: int) -> StoredResource:
        """One version, or NotFound / Gone (a deletion version)."""
        current = self._current(resource_type, resource_id, confined=True)
        row = None
        if current is not None:
            row = self.connection.execute(
                select(resource_versions).where(
                    resource_versions.c.resource_pk == current.pk,
                    resource_versions.c.version_id == version_id,
                )
            ).first()
        if row is None:
            raise NotFound(f"{resource_type}/{resource_id}/_history/{version_id} is not known")
        content = _content(row, current)
        if content is None:
            raise Gone(f"{resource_type}/{resource_id} version {version_id} is a deletion")
        return StoredResource(resource_type, resource_id, version_id, row.last_updated, content)

    def history(
        self, resource_type: str, resource_id: str, count: int, offset: int
    ) -> tuple[list[tuple[StoredResource, str]], int]:
        """Versions newest first, each with its method, and the number of versions."""
        current = self._current(resource_type, resource_id, confined=True)
        if current is None:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        where = resource_versions.c.resource_pk == current.pk
        total = self.connection.execute(
            select(func.count()).select_from(resource_versions).where(where)
        ).scalar_one()
        rows = self.connection.execute(
            select(resource_versions)
            .where(where)
            .order_by(resource_versions.c.version_id.desc())
            .limit(count)
            .offset(offset)
        ).all()
        versions = [
            (
                StoredResource(
                    resource_type, resource_id, r.version_id, r.last_updated, _content(r, current)
                ),
                r.method,
            )
            for r in rows
        ]
        return versions, total

    def search(self, query: SearchQuery, base_url: str) -> SearchResult:
        """Run a search: a page of matches, their includes, and the total when known."""
        compartment = self.compartment
        if query.summary_count:
            counted: int = self.connection.execute(
                sql.count(query, base_url, compartment)
            ).scalar_one()
            return SearchResult([], [], counted, False)
        rows = self.connection.execute(sql.page(query, base_url, compartment)).all()
        has_next = len(rows) > query.count
        rows = rows[: query.count]
        matches = [
            StoredResource(query.resource_type, r.id, r.version_id, r.last_updated, r.content)
            for r in rows
        ]
        if query.total_accurate:
            total: int | None = self.connection.execute(
                sql.count(query, base_url, compartment)
            ).scalar_one()
        elif not has_next and (rows or query.offset == 0):
            total = query.offset + len(rows)
        else:
            total = None
        pks = [r.pk for r in rows]
        included = self._includes(query, pks, [m.id for m in matches]) if pks else []
        return SearchResult(matches, included, total, has_next)

    def count_matches(self, query: SearchQuery, base_url: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` ids matching ``query`` (for conditional interactions)."""
        rows = self.connection.execute(
            select(resources.c.id)
            .where(sql.matching(query, base_url, self.compartment))
            .limit(limit)
        ).all()
        return [r.id for r in rows]

    # -- writes --------------------------------------------------------------------
    def create(self, resource: dict[str, Any], resource_id: str | None = None) -> StoredResource:
        """Store a new resource with a server-assigned id (or the given one)."""
        resource_type = resource["resourceType"]
        resource_id = resource_id or new_id()
        now = naive_utc_now()
        content = _stamp(resource, resource_id, 1, now)
        entries = self._entries(resource_type, resource_id, content)
        pk = self.connection.execute(
            insert(resources)
            .values(
                resource_type=resource_type,
                id=resource_id,
                version_id=1,
                last_updated=now,
                deleted=False,
                content=content,
            )
            .returning(resources.c.pk)
        ).scalar_one()
        self._write_version(pk, 1, now, "POST")
        self._write_indexes([(pk, resource_type, entries)])
        return StoredResource(resource_type, resource_id, 1, now, content)

    def create_many(self, new: list[dict[str, Any]]) -> list[StoredResource]:
        """Store many new resources with server-assigned ids, in a few bulk statements."""
        if not new:
            return []
        now = naive_utc_now()
        contents = [_stamp(resource, new_id(), 1, now) for resource in new]
        entries = [self._entries(c["resourceType"], c["id"], c) for c in contents]
        rows = [
            {
                "resource_type": c["resourceType"],
                "id": c["id"],
                "version_id": 1,
                "last_updated": now,
                "deleted": False,
                "content": c,
            }
            for c in contents
        ]
        pks: Sequence[int]
        if self.connection.dialect.name == "sqlite":
            pks = self._next_sqlite_pks(len(rows))
            insert_rows(
                self.connection,
                resources,
                [{"pk": pk, **row} for row, pk in zip(rows, pks, strict=True)],
            )
        else:
            pks = (
                self.connection.execute(
                    insert(resources).returning(resources.c.pk, sort_by_parameter_order=True),
                    rows,
                )
                .scalars()
                .all()
            )
        insert_rows(
            self.connection,
            resource_versions,
            [
                {
                    "resource_pk": pk,
                    "version_id": 1,
                    "last_updated": now,
                    "method": "POST",
                    "content": None,  # the current version's content is the resource row's
                }
                for pk in pks
            ],
        )
        self._write_indexes(
            [(pk, c["resourceType"], e) for pk, c, e in zip(pks, contents, entries, strict=True)]
        )
        return [StoredResource(c["resourceType"], c["id"], 1, now, c) for c in contents]

    def _next_sqlite_pks(self, count: int) -> list[int]:
        """The pks SQLite would give ``count`` new resource rows: the next rowids.

        SQLite cannot sort a multi-row ``INSERT ... RETURNING`` by parameter set, so
        SQLAlchemy sent one INSERT per row to learn each row's pk (100 audit events: 100
        statements). A SQLite write session holds the database's one write lock from its
        ``BEGIN IMMEDIATE`` (``store.database``), so no other writer can insert before
        these rows: they are numbered here, as SQLite numbers rows (the largest rowid plus
        one; the table has no AUTOINCREMENT), and go in a few multi-row INSERTs.
        """
        if not self.connection.in_transaction():
            raise RuntimeError("SQLite pks are numbered only inside a write transaction")
        last = self.connection.execute(select(func.max(resources.c.pk))).scalar_one()
        first = (last or 0) + 1
        return list(range(first, first + count))

    def update(
        self, resource: dict[str, Any], resource_id: str, if_match: int | None = None
    ) -> WriteResult:
        """Replace (or create, with the client's id) a resource; check If-Match."""
        resource_type = resource["resourceType"]
        current = self._current(resource_type, resource_id, for_update=True)
        if current is not None and not self._may_change(resource_type, resource_id, current):
            raise Forbidden(
                f"{resource_type}/{resource_id} is outside the patient compartment "
                "this request is limited to"
            )
        if current is None:
            if if_match is not None:
                raise PreconditionFailed(f"{resource_type}/{resource_id} does not exist")
            return WriteResult(self.create(resource, resource_id), created=True)
        if if_match is not None and if_match != current.version_id:
            raise PreconditionFailed(
                f"Version conflict: If-Match names version {if_match}, "
                f"the current version is {current.version_id}"
            )
        version = current.version_id + 1
        now = naive_utc_now()
        content = _stamp(resource, resource_id, version, now)
        entries = self._entries(resource_type, resource_id, content)
        self._supersede(current)
        self.connection.execute(
            update(resources)
            .where(resources.c.pk == current.pk)
            .values(version_id=version, last_updated=now, deleted=False, content=content)
        )
        self._write_version(current.pk, version, now, "PUT")
        self._clear_index([current.pk])
        self._write_indexes([(current.pk, resource_type, entries)])
        stored = StoredResource(resource_type, resource_id, version, now, content)
        return WriteResult(stored, created=bool(current.deleted))

    def delete(self, resource_type: str, resource_id: str) -> bool:
        """Delete a resource (keeping its history); False if it was already deleted."""
        current = self._current(resource_type, resource_id, for_update=True, confined=True)
        if current is None:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        if current.deleted:
            return False
        version = current.version_id + 1
        now = naive_utc_now()
        self._supersede(current)
        self.connection.execute(
            update(resources)
            .where(resources.c.pk == current.pk)
            .values(version_id=version, last_updated=now, deleted=True, content=None)
        )
        self._write_version(current.pk, version, now, "DELETE")
        self._clear_index([current.pk])
        return True

    # -- internals -----------------------------------------------------------------
    def _current(
        self,
        resource_type: str,
        resource_id: str,
        for_update: bool = False,
        confined: bool = False,
    ) -> Any:
        """The resource's row; with ``confined``, None when it is outside the compartment.

        Rows of a confining session carry ``in_compartment``: the stored index rows put the
        resource in it. A deleted resource, which has none, is decided by its last live
        version (:meth:`_was_inside`; a second statement, only then).
        """
        compartment = self._confining(resource_type)
        columns = [*resources.c]
        if compartment is not None:
            columns.append(sql.holds(compartment, resource_type).label("in_compartment"))
        statement = select(*columns).where(
            resources.c.resource_type == resource_type, resources.c.id == resource_id
        )
        if for_update:
            statement = statement.with_for_update(of=resources)
        row = self.connection.execute(statement).first()
        if not confined or row is None or compartment is None:
            return row
        return row if self._inside(compartment, row) else None

    def _inside(self, compartment: PatientCompartment, row: Any) -> bool:
        """A resource row (with ``in_compartment``) is in ``compartment``: by its index rows,
        or, deleted, by its last live version."""
        return bool(row.in_compartment) or (row.deleted and self._was_inside(compartment, row))

    def _was_inside(self, compartment: PatientCompartment, row: Any) -> bool:
        """A deleted resource's last live version was in ``compartment``."""
        last = self.connection.execute(
            select(resource_versions.c.content)
            .where(
                resource_versions.c.resource_pk == row.pk,
                resource_versions.c.method != "DELETE",
            )
            .order_by(resource_versions.c.version_id.desc())
            .limit(1)
        ).scalar()
        if last is None:
            return False
        entries = extract(last, self.registry.parameters(row.resource_type))
        return compartment.may_write(row.resource_type, row.id, entries.references)

    def _confining(self, resource_type: str) -> PatientCompartment | None:
        """The session's compartment if it confines ``resource_type``."""
        compartment = self.compartment
        return (
            compartment if compartment is not None and compartment.confines(resource_type) else None
        )

    def _member(self, resource_type: str) -> ColumnElement[bool]:
        """In the compartment (always true for a type the session does not confine)."""
        compartment = self._confining(resource_type)
        return true() if compartment is None else sql.holds(compartment, resource_type)

    def _may_change(self, resource_type: str, resource_id: str, current: Any) -> bool:
        """A stored resource may be replaced: live and in the compartment (if confined)."""
        compartment = self._confining(resource_type)
        if compartment is None:
            return True
        inside = self._inside(compartment, current)
        return compartment.may_replace(resource_type, resource_id, inside)

    def _entries(
        self, resource_type: str, resource_id: str, content: dict[str, Any]
    ) -> IndexEntries:
        """The index rows of new content; Forbidden if it leaves the session's compartment."""
        entries = extract(content, self.registry.parameters(resource_type))
        compartment = self._confining(resource_type)
        if compartment is not None and not compartment.may_write(
            resource_type, resource_id, entries.references
        ):
            raise Forbidden(
                f"The {resource_type} is not in the patient compartment this request is "
                "limited to (none of its compartment references names the patient)"
            )
        return entries

    def _write_version(self, pk: int, version: int, now: datetime, method: str) -> None:
        """The row of a new current version: no content (see ``schema.resource_versions``)."""
        self.connection.execute(
            insert(resource_versions).values(
                resource_pk=pk, version_id=version, last_updated=now, method=method, content=None
            )
        )

    def _supersede(self, current: Any) -> None:
        """Before ``current`` (a resource row) stops being current: its version row gets the
        content (a deleted resource's version is a deletion: nothing to keep)."""
        if current.deleted:
            return
        self.connection.execute(
            update(resource_versions)
            .where(
                resource_versions.c.resource_pk == current.pk,
                resource_versions.c.version_id == current.version_id,
            )
            .values(content=current.content)
        )

    def _write_indexes(self, written: list[tuple[int, str, IndexEntries]]) -> None:
        rows: dict[str, list[dict[str, Any]]] = {attribute: [] for attribute, _ in _INDEX_TABLES}
        for pk, resource_type, entries in written:
            for attribute, _ in _INDEX_TABLES:
                for row in getattr(entries, attribute):
                    row["resource_pk"] = pk
                    row["resource_type"] = resource_type
                    rows[attribute].append(row)
        for attribute, table in _INDEX_TABLES:
            insert_rows(self.connection, table, rows[attribute])

    def reindex(self, stored: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Replace the index rows of these (pk, type, content) resources."""
        self._clear_index([pk for pk, _, _ in stored])
        self._write_indexes(
            [
                (pk, kind, extract(content, self.registry.parameters(kind)))
                for pk, kind, content in stored
            ]
        )

    def _clear_index(self, pks: list[int]) -> None:
        for _, table in _INDEX_TABLES:
            self.connection.execute(delete(table).where(table.c.resource_pk.in_(pks)))

    def _includes(self, query: SearchQuery, pks: list[int], ids: list[str]) -> list[StoredResource]:
        seen: set[tuple[str, str]] = set()
        found: list[StoredResource] = []
        for include in query.includes:
            for row in self._included_targets(include, pks):
                _add_unique(found, seen, row)
        for include in query.revincludes:
            for row in self._revincluded_sources(include, query.resource_type, ids):
                _add_unique(found, seen, row)
        return found

    def _included_targets(self, include: Include, pks: list[int]) -> list[Any]:
        refs = search_references.c
        targets = select(refs.target_type, refs.target_id).where(
            refs.resource_pk.in_(pks), refs.param == include.param, refs.target_id.is_not(None)
        )
        if include.target_type:
            targets = targets.where(refs.target_type == include.target_type)
        pairs = self.connection.execute(targets).all()
        by_type: dict[str, set[str]] = {}
        for target_type, target_id in pairs:
            by_type.setdefault(target_type, set()).add(target_id)
        rows: list[Any] = []
        for target_type, target_ids in by_type.items():
            rows += self.connection.execute(
                select(resources).where(
                    resources.c.resource_type == target_type,
                    resources.c.id.in_(target_ids),
                    resources.c.deleted.is_(False),
                    self._member(target_type),
                )
            ).all()
        return rows

    def _revincluded_sources(self, include: Include, match_type: str, ids: list[str]) -> list[Any]:
        if include.target_type and include.target_type != match_type:
            return []
        refs = search_references.c
        sources = select(refs.resource_pk).where(
            refs.resource_type == include.source_type,
            refs.param == include.param,
            refs.target_type == match_type,
            refs.target_id.in_(ids),
        )
        return list(
            self.connection.execute(
                select(resources).where(
                    resources.c.pk.in_(sources),
                    resources.c.deleted.is_(False),
                    self._member(include.source_type),
                )
            ).all()
        )


def _add_unique(found: list[StoredResource], seen: set[tuple[str, str]], row: Any) -> None:
    key = (row.resource_type, row.id)
    if key not in seen:
        seen.add(key)
        found.append(
            StoredResource(row.resource_type, row.id, row.version_id, row.last_updated, row.content)
        )


def _stamp(
    resource: dict[str, Any], resource_id: str, version: int, now: datetime
) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = format_instant(now)
    stamped = {"resourceType": resource["resourceType"], "id": resource_id, "meta": meta}
    stamped.update({k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")})
    return stamped


def _content(version: Any, current: Any) -> dict[str, Any] | None:
    """A version row's content: its own, the resource row's for the current version, none
    for a deletion."""
    if version.method == "DELETE":
        return None
    return version.content if version.content is not None else current.content  # type: ignore[no-any-return]
