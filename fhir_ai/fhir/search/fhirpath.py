"""The subset of FHIRPath that search parameter expressions use.

Supported: paths (``DiagnosticReport.subject``), unions (``a | b``), type casts
(``(Observation.value as Quantity)``, ``Condition.onset.as(dateTime)``), choice
elements (``Observation.effective`` finds ``effectiveDateTime`` and ``effectivePeriod``),
``.where(resolve() is Patient)`` on references and ``.where(system='email')`` filters.
Anything else is refused when the expression is compiled, not guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_CAST = re.compile(r"^\((?P<path>[A-Za-z.]+) as (?P<type>[A-Za-z]+)\)(?P<rest>(\.[A-Za-z]+)*)$")
_AS_CALL = re.compile(r"\.as\((?P<type>[A-Za-z]+)\)")
_RESOLVE_IS = re.compile(r"\.where\(resolve\(\) is (?P<type>[A-Za-z]+)\)$")
_WHERE_EQ = re.compile(r"\.where\((?P<field>[A-Za-z]+)='(?P<value>[^']*)'\)$")
_PATH = re.compile(r"^[A-Za-z]+(\.[A-Za-z]+)+$")


class UnsupportedExpression(ValueError):
    """The expression uses FHIRPath beyond the supported subset."""


@dataclass(frozen=True, slots=True)
class Step:
    """One element name, optionally narrowed to one type of a choice element."""

    name: str
    type: str | None = None


@dataclass(frozen=True, slots=True)
class PathExpression:
    """One branch of a union: steps from the resource, plus optional filters."""

    steps: tuple[Step, ...]
    reference_type: str | None = None
    where: tuple[str, str] | None = None

    def evaluate(self, resource: dict[str, Any]) -> Iterator[Any]:
        """Yield every value the path reaches in ``resource``."""
        for value in _walk([resource], self.steps):
            if self.where and not _has(value, *self.where):
                continue
            if self.reference_type and not _references_type(value, self.reference_type):
                continue
            yield value


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled search parameter expression: a union of paths."""

    paths: tuple[PathExpression, ...]
    #: The elements the paths start from: a resource holding none of them (see
    #: :func:`element_names`) yields nothing.
    roots: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", frozenset(path.steps[0].name for path in self.paths))

    def evaluate(self, resource: dict[str, Any]) -> Iterator[Any]:
        """Yield every value of every branch."""
        for path in self.paths:
            yield from path.evaluate(resource)


def compile_expression(expression: str) -> Expression:
    """Compile a search parameter expression, or raise :class:`UnsupportedExpression`."""
    return Expression(tuple(_compile_branch(part.strip()) for part in expression.split("|")))


def element_names(resource: dict[str, Any]) -> set[str]:
    """The names under which a path step can find the resource's top-level elements: each
    key and, for a choice element (``multipleBirthBoolean``), every shorter name that ends
    before a capital (``multiple``, ``multipleBirth``)."""
    names = set(resource)
    for key in resource:
        if not key.islower():  # only a name with a capital can be a typed choice element
            names.update(key[:at] for at in range(1, len(key)) if key[at].isupper())
    return names


def _compile_branch(text: str) -> PathExpression:
    reference_type = where = None
    if match := _RESOLVE_IS.search(text):
        reference_type, text = match["type"], text[: match.start()]
    elif match := _WHERE_EQ.search(text):
        where, text = (match["field"], match["value"]), text[: match.start()]
    cast_type = None
    if match := _CAST.match(text):
        text, cast_type = match["path"] + (match["rest"] or ""), match["type"]
        cast_at = match["path"].count(".") - 1
    elif match := _AS_CALL.search(text):
        cast_at = text[: match.start()].count(".") - 1
        text, cast_type = text[: match.start()] + text[match.end() :], match["type"]
    if not _PATH.match(text):
        raise UnsupportedExpression(text)
    names = text.split(".")[1:]
    steps = tuple(
        Step(name, cast_type if cast_type and index == cast_at else None)
        for index, name in enumerate(names)
    )
    return PathExpression(steps, reference_type, where)


def _walk(nodes: list[Any], steps: tuple[Step, ...]) -> list[Any]:
    """Every value ``steps`` reach from ``nodes``, one step at a time (arrays flattened)."""
    for step in steps:
        children: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                for value in _child_values(node, step):
                    if isinstance(value, list):
                        children.extend(value)
                    else:
                        children.append(value)
        if not children:
            return children
        nodes = children
    return nodes


def _child_values(node: dict[str, Any], step: Step) -> list[Any]:
    if step.type is not None:
        key = step.name + step.type[0].upper() + step.type[1:]
        return [node[key]] if key in node else []
    if step.name in node:
        return [node[step.name]]
    prefix = step.name
    return [
        value
        for key, value in node.items()
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper()
    ]


def _has(value: Any, key: str, expected: str) -> bool:
    return isinstance(value, dict) and value.get(key) == expected


def _references_type(value: Any, resource_type: str) -> bool:
    if not isinstance(value, dict):
        return False
    reference = value.get("reference")
    if isinstance(reference, str):
        parts = reference.split("/")
        return len(parts) >= 2 and (parts[-2] == resource_type or parts[-4:-3] == [resource_type])
    return value.get("type") == resource_type
