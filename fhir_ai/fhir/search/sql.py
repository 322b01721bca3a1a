"""Translate a :class:`SearchQuery` into SQL over the search index tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select
from sqlalchemy.sql.elements import UnaryExpression

from fhir_ai.errors import InvalidRequest
from fhir_ai.fhir.search.compartment import PatientCompartment
from fhir_ai.fhir.search.dates import parse_search_date
from fhir_ai.fhir.search.extract import MAX_VALUE, normalize_string, parse_reference
from fhir_ai.fhir.search.query import Criterion, SearchQuery, SortKey
from fhir_ai.store.schema import (
    resources,
    search_dates,
    search_references,
    search_strings,
    search_tokens,
)

_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_TABLES = {
    "token": search_tokens,
    "uri": search_tokens,
    "reference": search_references,
    "date": search_dates,
    "string": search_strings,
}


def matching(
    query: SearchQuery, base_url: str, compartment: PatientCompartment | None = None
) -> ColumnElement[bool]:
    """The WHERE clause selecting live resources of the type that meet every criterion.

    With a ``compartment`` that confines the type, only resources in it match: the
    compartment is one more ANDed criterion, so it works with every other one.
    """
    clauses = [resources.c.resource_type == query.resource_type, resources.c.deleted == false()]
    clauses += [_criterion(query.resource_type, c, base_url) for c in query.criteria]
    if compartment is not None and compartment.confines(query.resource_type):
        clauses.append(in_compartment(compartment, query.resource_type))
    return and_(*clauses)


def in_compartment(compartment: PatientCompartment, resource_type: str) -> ColumnElement[bool]:
    """Resources of ``resource_type`` in the compartment, for searches.

    The set of the patient's linked resources comes from the reference lookup index
    (type, parameter, target id), like any reference criterion.
    """
    refs = search_references.c
    linked = select(refs.resource_pk).where(
        refs.resource_type == resource_type, *_links_to_patient(compartment, resource_type)
    )
    member = resources.c.pk.in_(linked)
    return _or_patient_itself(compartment, resource_type, member)


def holds(compartment: PatientCompartment, resource_type: str) -> ColumnElement[bool]:
    """The current row of ``resources`` is in the compartment, for reads of known ids.

    A correlated probe of the per-resource reference index (one index lookup per row),
    not the patient's whole set of links: reads stay one indexed query.
    """
    member = exists().where(
        search_references.c.resource_pk == resources.c.pk,
        *_links_to_patient(compartment, resource_type),
    )
    return _or_patient_itself(compartment, resource_type, member)


def _links_to_patient(
    compartment: PatientCompartment, resource_type: str
) -> tuple[ColumnElement[bool], ...]:
    """Reference index rows by which a ``resource_type`` links to the compartment's patient."""
    refs = search_references.c
    return (
        refs.param.in_(compartment.links[resource_type]),
        refs.target_id == compartment.patient_id[:MAX_VALUE],
        refs.target_type == "Patient",
    )


def _or_patient_itself(
    compartment: PatientCompartment, resource_type: str, member: ColumnElement[bool]
) -> ColumnElement[bool]:
    if resource_type == "Patient":
        return or_(resources.c.id == compartment.patient_id, member)
    return member


def page(
    query: SearchQuery, base_url: str, compartment: PatientCompartment | None = None
) -> Select[tuple[int, str, int, datetime, object]]:
    """Select one page (plus one row, to know whether a next page exists)."""
    columns = (
        resources.c.pk,
        resources.c.id,
        resources.c.version_id,
        resources.c.last_updated,
        resources.c.content,
    )
    order = [_order(query.resource_type, key) for key in query.sort] + [resources.c.pk.asc()]
    return (
        select(*columns)
        .where(matching(query, base_url, compartment))
        .order_by(*order)
        .limit(query.count + 1)
        .offset(query.offset)
    )


def count(
    query: SearchQuery, base_url: str, compartment: PatientCompartment | None = None
) -> Select[int]:
    """Count every match."""
    return select(func.count()).select_from(resources).where(matching(query, base_url, compartment))


def _criterion(resource_type: str, criterion: Criterion, base_url: str) -> ColumnElement[bool]:
    if criterion.name == "_id":
        return resources.c.id.in_(criterion.values)
    if criterion.name == "_lastUpdated":
        return or_(*(_last_updated(v) for v in criterion.values))
    table = _TABLES[criterion.type]
    indexed = select(table.c.resource_pk).where(
        table.c.resource_type == resource_type, table.c.param == criterion.name
    )
    if criterion.modifier == "missing":
        present = resources.c.pk.in_(indexed)
        return not_(present) if criterion.values == ("true",) else present
    tests = [_value_test(criterion, value, base_url) for value in criterion.values]
    matches = resources.c.pk.in_(indexed.where(or_(*tests)))
    return not_(matches) if criterion.modifier == "not" else matches


def _value_test(criterion: Criterion, value: str, base_url: str) -> ColumnElement[bool]:
    if criterion.type in ("token", "uri"):
        return _token(value, criterion.type)
    if criterion.type == "reference":
        return _reference(value, criterion.target_type, base_url)
    if criterion.type == "date":
        low, high, prefix = _date_value(value, criterion.name)
        return _date_test(search_dates.c.low, search_dates.c.high, prefix, low, high)
    return _string(value, criterion.modifier)


def _token(value: str, kind: str) -> ColumnElement[bool]:
    column = search_tokens.c
    if kind == "uri" or "|" not in value:
        return column.code == value[:MAX_VALUE]
    system, _, code = value.partition("|")
    if not system:
        return and_(column.system.is_(None), column.code == code[:MAX_VALUE])
    if not code:
        return column.system == system[:MAX_VALUE]
    return and_(column.system == system[:MAX_VALUE], column.code == code[:MAX_VALUE])


def _reference(value: str, target_type: str | None, base_url: str) -> ColumnElement[bool]:
    column = search_references.c
    if value.startswith(base_url.rstrip("/") + "/"):
        value = value[len(base_url.rstrip("/")) + 1 :]
    if "://" in value or value.startswith("urn:"):
        return column.target_url == value[:1024]
    ref_type, ref_id, _ = parse_reference(value) if "/" in value else (None, value, None)
    if ref_id is None:
        raise InvalidRequest(f"Invalid reference search value {value!r}")
    test = column.target_id == ref_id[:MAX_VALUE]
    wanted_type = ref_type or target_type
    return and_(test, column.target_type == wanted_type) if wanted_type else test


def _string(value: str, modifier: str | None) -> ColumnElement[bool]:
    column = search_strings.c
    if modifier == "exact":
        return column.exact == value
    needle = normalize_string(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{needle}%" if modifier == "contains" else f"{needle}%"
    return column.value.like(pattern, escape="\\")


def _date_value(value: str, name: str) -> tuple[datetime, datetime, str]:
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    raw = value[2:] if value[:2] in _DATE_PREFIXES else value
    low, high = parse_search_date(raw, name)
    return low, high, prefix


def _date_test(
    lo: ColumnElement[datetime],
    hi: ColumnElement[datetime],
    prefix: str,
    low: datetime,
    high: datetime,
) -> ColumnElement[bool]:
    """Compare a stored range ``[lo, hi)`` with the searched range ``[low, high)``.

    Follows FHIR R4 search §3.1.1.4.3: ``eq`` needs the stored range inside the
    searched one, ``gt``/``lt`` need some of it after/before, ``ge``/``le`` add the
    searched range itself, ``sa``/``eb`` need all of it after/before, and ``ap`` is
    taken as an overlap with the searched range.
    """
    tests: dict[str, ColumnElement[bool]] = {
        "eq": and_(lo >= low, hi <= high),
        "ne": not_(and_(lo >= low, hi <= high)),
        "gt": hi > high,
        "lt": lo < low,
        "ge": hi > low,
        "le": lo < high,
        "sa": lo >= high,
        "eb": hi <= low,
        "ap": and_(lo < high, hi > low),
    }
    return tests[prefix]


def _last_updated(value: str) -> ColumnElement[bool]:
    """The same tests for an instant: a range of one tick, ``[t, t]`` inclusive."""
    low, high, prefix = _date_value(value, "_lastUpdated")
    t = resources.c.last_updated
    tests: dict[str, ColumnElement[bool]] = {
        "eq": and_(t >= low, t < high),
        "ne": not_(and_(t >= low, t < high)),
        "gt": t >= high,
        "lt": t < low,
        "ge": t >= low,
        "le": t < high,
        "sa": t >= high,
        "eb": t < low,
        "ap": and_(t >= low, t < high),
    }
    return tests[prefix]


def _order(resource_type: str, key: SortKey) -> UnaryExpression[object]:
    if key.name == "_id":
        column: ColumnElement[object] = resources.c.id
    elif key.name == "_lastUpdated":
        column = resources.c.last_updated
    else:
        table = _TABLES[key.type]
        if key.type == "date":
            value = table.c.high if key.descending else table.c.low
        else:
            value = table.c.value if key.type == "string" else table.c.code
        aggregate = func.max(value) if key.descending else func.min(value)
        column = (
            select(aggregate)
            .where(
                table.c.resource_pk == resources.c.pk,
                table.c.resource_type == resource_type,
                table.c.param == key.name,
            )
            .scalar_subquery()
        )
    return column.desc().nulls_last() if key.descending else column.asc().nulls_last()
