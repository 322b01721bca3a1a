"""Parse FHIR search parameters into a typed query."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhir_ai.errors import InvalidRequest, UnsupportedParameter
from fhir_ai.fhir.search.parameters import (
    CONTROL_PARAMETERS,
    RESULT_PARAMETERS,
    SearchParameter,
    SearchRegistry,
)

_MODIFIERS = {
    "token": {"not", "missing", "exact"},
    "uri": {"missing", "exact"},
    "reference": {"missing"},
    "date": {"missing"},
    "string": {"exact", "contains", "missing"},
}
_SPLIT = re.compile(r"(?<!\\),")


@dataclass(frozen=True, slots=True)
class Criterion:
    """One parameter's test: any of ``values`` (OR); criteria of a query are ANDed."""

    name: str
    type: str
    values: tuple[str, ...]
    modifier: str | None = None
    target_type: str | None = None


@dataclass(frozen=True, slots=True)
class Include:
    """An ``_include`` or ``_revinclude``: ``source_type:param[:target_type]``."""

    source_type: str
    param: str
    target_type: str | None = None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key."""

    name: str
    type: str
    descending: bool


@dataclass(slots=True)
class SearchQuery:
    """A whole search: what to match, how to order and page, what to add."""

    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    summary_count: bool = False
    total_accurate: bool = False
    elements: tuple[str, ...] = ()
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)


def split_values(raw: str) -> tuple[str, ...]:
    """Split a parameter value on unescaped commas and unescape ``\\,`` ``\\$`` ``\\|``."""
    return tuple(
        v.replace("\\,", ",").replace("\\$", "$").replace("\\|", "|") for v in _SPLIT.split(raw)
    )


def parse_query(
    registry: SearchRegistry,
    resource_type: str,
    params: list[tuple[str, str]],
    *,
    strict: bool,
    default_count: int,
    max_count: int,
) -> SearchQuery:
    """Build a :class:`SearchQuery`; unknown parameters raise under ``strict``."""
    query = SearchQuery(resource_type, count=default_count)
    for key, raw in params:
        name, _, modifier = key.partition(":")
        if name in CONTROL_PARAMETERS:
            _apply_control(query, registry, name, modifier, raw, max_count, strict)
            query.used.append((key, raw))
        elif name in RESULT_PARAMETERS:
            if modifier:
                raise UnsupportedParameter(f"Modifier ':{modifier}' is not supported on {name}")
            kind = "token" if name == "_id" else "date"
            query.criteria.append(Criterion(name, kind, split_values(raw)))
            query.used.append((key, raw))
        elif parameter := registry.get(resource_type, name):
            query.criteria.append(_criterion(registry, parameter, modifier, raw))
            query.used.append((key, raw))
        elif strict:
            raise UnsupportedParameter(
                f"Unknown search parameter '{name}' for resource type '{resource_type}'",
                expression=name,
            )
        else:
            query.ignored.append(key)
    return query


def _criterion(
    registry: SearchRegistry, parameter: SearchParameter, modifier: str, raw: str
) -> Criterion:
    target_type = None
    if modifier and parameter.type == "reference" and registry.supports(modifier):
        target_type, modifier = modifier, ""
    if modifier and modifier not in _MODIFIERS[parameter.type]:
        raise UnsupportedParameter(
            f"Modifier ':{modifier}' is not supported on {parameter.type} parameter "
            f"'{parameter.name}'",
            expression=parameter.name,
        )
    if "." in parameter.name:
        raise UnsupportedParameter("Chained parameters are not supported")
    values = split_values(raw)
    if modifier == "missing" and values not in (("true",), ("false",)):
        raise InvalidRequest(f"':missing' takes true or false, not {raw!r}")
    return Criterion(parameter.name, parameter.type, values, modifier or None, target_type)


def _apply_control(
    query: SearchQuery,
    registry: SearchRegistry,
    name: str,
    modifier: str,
    raw: str,
    max_count: int,
    strict: bool,
) -> None:
    if name in ("_count", "_offset"):
        number = _non_negative_int(name, raw)
        if name == "_count":
            query.count = min(number, max_count)
            query.summary_count = query.summary_count or number == 0
        else:
            query.offset = number
    elif name == "_sort":
        query.sort = [_sort_key(registry, query.resource_type, key) for key in raw.split(",")]
    elif name == "_summary":
        if raw not in ("count", "false"):
            raise UnsupportedParameter(f"_summary={raw} is not supported (count, false are)")
        query.summary_count = raw == "count"
    elif name == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise InvalidRequest(f"_total must be none, estimate or accurate, not {raw!r}")
        query.total_accurate = raw == "accurate"
    elif name == "_elements":
        query.elements = tuple(e.strip() for e in raw.split(",") if e.strip())
    elif name in ("_include", "_revinclude"):
        include = _include(registry, raw, name, strict)
        if include is not None:
            target = query.includes if name == "_include" else query.revincludes
            target.append(include)


def _non_negative_int(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise InvalidRequest(f"{name} must be a non-negative integer, not {raw!r}", expression=name)
    return int(raw)


def _sort_key(registry: SearchRegistry, resource_type: str, key: str) -> SortKey:
    descending = key.startswith("-")
    name = key.lstrip("-")
    if name == "_id":
        return SortKey(name, "token", descending)
    if name == "_lastUpdated":
        return SortKey(name, "date", descending)
    parameter = registry.get(resource_type, name)
    if parameter is None or parameter.type not in ("date", "string", "token"):
        raise UnsupportedParameter(f"Cannot sort {resource_type} by '{name}'", expression="_sort")
    return SortKey(name, parameter.type, descending)


def _include(registry: SearchRegistry, raw: str, name: str, strict: bool) -> Include | None:
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise InvalidRequest(f"{name} must be Type:parameter[:TargetType], not {raw!r}")
    source_type, param = parts[0], parts[1]
    parameter = registry.get(source_type, param)
    if parameter is None or parameter.type != "reference":
        if strict:
            raise UnsupportedParameter(f"{name}={raw}: no reference parameter '{param}'")
        return None
    return Include(source_type, param, parts[2] if len(parts) == 3 else None)
