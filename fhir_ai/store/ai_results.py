"""Fixed-shape reads of a patient's stored AI imaging results, for the CDS services.

A CDS hook call has about 500 ms in the spec and much less in practice, so the imaging
services do not go through the generic FHIR search (parse, build SQL, page, ``_include``,
count: five statements). They run :data:`IMAGING_RESULTS`, one statement built once per
process, which returns in one round trip

- ``report`` rows: the newest AI-labelled DiagnosticReports of the patient whose ``date``
  (``effective[x]``) reaches ``since``, newest first, at most ``limit``;
- ``result`` rows: the live Observations those reports name in ``result``, found through
  the reference index (``owner`` is the report's row);
- one ``running`` row: how many imaging-analysis Tasks of the patient have not ended.

Every lookup goes through the search index tables (the same rows a FHIR search uses), so
results written through the FHIR API or by the workers are read identically. The
statement's shape does not depend on the data, and the planner cannot pick a bad starting
point: every part starts from the patient's own index rows (the patient dates index for
reports, the patient's Task references for Tasks) and every other test is a probe of the
per-resource indexes (so PostgreSQL's per-execution custom plans, which the engine asks
for, all come out alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    CTE,
    CompoundSelect,
    Engine,
    Integer,
    Select,
    String,
    bindparam,
    false,
    func,
    literal,
    null,
    select,
    union_all,
)

from fhir_ai.fhir.ai_results import AI_ASSERTED, IMAGING_ANALYSIS
from fhir_ai.store.driver_sql import DriverStatement
from fhir_ai.store.schema import (
    resources,
    search_patient_dates,
    search_references,
    search_tokens,
)

REPORT = "DiagnosticReport"
RUNNING_TASK_STATES = ("requested", "accepted", "in-progress")


@dataclass(frozen=True, slots=True)
class ImagingResultRows:
    """What :data:`IMAGING_RESULTS` returned, as stored content."""

    reports: list[dict[str, Any]]
    observations: dict[str, dict[str, Any]]  # "Observation/<id>" -> resource
    running: int


def _of_patient(resource_type: str) -> CTE:
    """The pks of ``resource_type`` resources whose ``patient`` is ``:patient_id``.

    Materialised (a fence in both databases): the search starts from the patient's few
    index rows, whatever the planner guesses of the correlated token columns.
    """
    refs = search_references.alias(f"{resource_type.lower()}_patient_ref")
    return (
        select(refs.c.resource_pk)
        .where(
            refs.c.resource_type == resource_type,
            refs.c.param == "patient",
            refs.c.target_type == "Patient",
            refs.c.target_id == bindparam("patient_id", type_=String),
        )
        .cte(f"{resource_type.lower()}_of_patient")
        .prefix_with("MATERIALIZED")
    )


def _has_token(
    pk: Any, resource_type: str, param: str, codes: tuple[str, ...], system: str | None = None
) -> Any:
    """The resource has an index row ``param`` with one of ``codes`` (in ``system``).

    A correlated count, not EXISTS: PostgreSQL would turn EXISTS into a semi-join and,
    misjudging the correlated columns, hash every such token of the type (every AI report
    of every patient); a count is probed per candidate through the per-resource index.
    """
    tokens = search_tokens.alias()
    # One bound parameter per code, not an "expanding" one that is rendered anew per call.
    code = tokens.c.code.in_([literal(value, String) for value in codes])
    found = (
        select(func.count())
        .where(
            tokens.c.resource_pk == pk,
            tokens.c.resource_type == resource_type,
            tokens.c.param == param,
            code,
            *([tokens.c.system == system] if system else []),
        )
        .scalar_subquery()
    )
    return found > 0


def _reports() -> CTE:
    """The newest AI reports of the patient since ``:since`` (at most ``:limit``): their
    pks and dates (the content of the few chosen is read after).

    The patient dates index is read newest first (ties: the last written first) and each
    candidate is probed (not deleted, AI-labelled) until ``:limit`` pass: a patient with
    200 reports costs about ``:limit`` index entries and probes, and no sort.
    """
    dates = search_patient_dates.alias("report_date")
    report = resources.alias("report")
    return (
        select(dates.c.resource_pk.label("pk"), dates.c.high)
        .select_from(dates.join(report, report.c.pk == dates.c.resource_pk))
        .where(
            dates.c.resource_type == REPORT,
            dates.c.param == "date",
            dates.c.patient_id == bindparam("patient_id", type_=String),
            dates.c.high > bindparam("since"),
            report.c.deleted == false(),
            _has_token(report.c.pk, REPORT, "_security", AI_ASSERTED[1:], AI_ASSERTED[0]),
        )
        .order_by(dates.c.high.desc(), dates.c.resource_pk.desc())
        .limit(bindparam("limit", type_=Integer))
        .cte("reports")
    )


def _results(reports: CTE) -> Select[str, int, Any, None]:
    """The live Observations the reports name in ``result``."""
    result_ref = search_references.alias("result_ref")
    observation = resources.alias("observation")
    return (
        select(literal("result"), result_ref.c.resource_pk, observation.c.content, null())
        .select_from(result_ref.join(observation, observation.c.id == result_ref.c.target_id))
        .where(
            # Only the per-resource index can serve these terms (none is on the leading
            # column of another index): each report's own few rows are probed.
            result_ref.c.resource_pk.in_(select(reports.c.pk)),
            result_ref.c.param == "result",
            func.coalesce(result_ref.c.target_type, "") == "Observation",
            observation.c.resource_type == "Observation",
            observation.c.deleted == false(),
        )
    )


def _running() -> Select[str, int, None, None]:
    """How many imaging-analysis Tasks of the patient have not ended."""
    mine = _of_patient("Task")
    task = resources.alias("task")
    return (
        select(literal("running"), func.count(), null(), null())
        .select_from(mine.join(task, task.c.pk == mine.c.resource_pk))
        .where(
            task.c.deleted == false(),
            _has_token(task.c.pk, "Task", "code", IMAGING_ANALYSIS[1:], IMAGING_ANALYSIS[0]),
            _has_token(task.c.pk, "Task", "status", RUNNING_TASK_STATES),
        )
    )


def _build() -> CompoundSelect[str, int, Any, Any]:
    reports = _reports()
    report = resources.alias("chosen_report")
    return union_all(
        select(literal("report"), reports.c.pk, report.c.content, reports.c.high).select_from(
            reports.join(report, report.c.pk == reports.c.pk)
        ),
        _results(reports),
        _running(),
    )


#: The one statement of :class:`ImagingResultsQuery` (immutable; built at import).
IMAGING_RESULTS = _build()
_VALUES = ("patient_id", "since", "limit")  # what changes from call to call


class ImagingResultsQuery:
    """:data:`IMAGING_RESULTS`, compiled once for an engine's database and run on the
    driver's own cursor: one round trip, no transaction around it.

    One statement sees one snapshot, so no transaction is opened around it: on SQLite
    (connections in the driver's autocommit mode, see ``store.database``) it runs in the
    read transaction SQLite opens for the statement alone, which under WAL never waits
    for writers; on PostgreSQL in autocommit (no BEGIN/ROLLBACK round trips).

    Run through SQLAlchemy's ``Connection.execute`` the statement cost 0.18 ms of CPU
    with 200 reports, two thirds of it SQLAlchemy's (its cache key, 33 bound parameters,
    result processing), against 0.06 ms on the cursor (:mod:`fhir_ai.store.driver_sql`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statement = DriverStatement(IMAGING_RESULTS, engine.dialect, _VALUES)
        self._postgres = engine.dialect.name == "postgresql"

    def read(self, patient_id: str, since: datetime, limit: int) -> ImagingResultRows:
        """The patient's newest AI reports at or after ``since`` (at most ``limit``), the
        Observations they name, and how many imaging analyses have not ended."""
        parameters = self._statement.parameters(patient_id=patient_id, since=since, limit=limit)
        connection = self.engine.raw_connection()
        try:
            if self._postgres:
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            try:
                cursor = connection.cursor()
                cursor.execute(self._statement.sql, parameters)
                rows = cursor.fetchall()
                cursor.close()
            finally:
                if self._postgres:
                    connection.driver_connection.autocommit = False  # type: ignore[union-attr]
        finally:
            connection.close()  # back to the pool
        return _collect(rows)


def _collect(rows: Sequence[Any]) -> ImagingResultRows:
    reports: list[tuple[Any, int, dict[str, Any]]] = []
    owners: set[int] = set()
    observations: dict[str, dict[str, Any]] = {}
    running = 0
    for kind, pk, stored, high in rows:
        # SQLite hands back the JSON text; psycopg has already parsed JSONB.
        content = orjson.loads(stored) if isinstance(stored, str | bytes) else stored
        if kind == "report" and content is not None and pk not in owners:
            owners.add(pk)
            reports.append((high, pk, content))
        elif kind == "result" and content is not None:
            observations[f"Observation/{content['id']}"] = content
        elif kind == "running":
            running = int(pk)
    # Newest first, ties last-written first (``high``: a datetime, or SQLite's ISO text).
    reports.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return ImagingResultRows([content for _, _, content in reports], observations, running)
