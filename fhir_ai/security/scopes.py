"""SMART on FHIR scopes (App Launch 1.0 and 2.x) and what they let a token do.

Grammar understood (anything else, such as ``openid``, ``launch/patient`` or a
malformed scope, is ignored and grants nothing)::

    v1: (patient|user|system)/(Type|*).(read|write|*)
    v2: (patient|user|system)/(Type|*).<c?r?u?d?s?>[?param=value&...]

Interactions: v1 ``read`` = read, vread, search, history; v1 ``write`` = create, update,
delete; v1 ``*`` = all. v2 ``c`` = create, ``r`` = read, vread, history (instance),
``u`` = update, ``d`` = delete, ``s`` = search.

Contexts:

* ``system/`` and ``user/`` grant the interaction on the type. ``user/`` is treated like
  ``system/``: this server has no notion of the user's own access rights, so the
  authorization server is trusted to have granted only what the user may do.
* ``patient/`` needs the token's ``patient`` claim (launch context) and is limited to
  that patient's compartment in a simple way (full compartment filtering is not
  implemented): ``read``/``vread``/``history`` of ``Patient/<id>`` itself, a search of
  ``Patient`` with ``_id=<id>``, and searches of other types that carry
  ``patient=<id>`` (or ``patient=Patient/<id>``, ``subject=Patient/<id>``,
  ``subject:Patient=<id>``) as one of their ANDed criteria with that single value. Any
  other read, and every write, is refused.

v2 query restrictions (``system/Observation.rs?category=laboratory``): a restricted
scope grants only searches whose parsed criteria include, for every restriction, the
same parameter (and modifier) with values that are a subset of the restriction's values
(criteria are ANDed, so the result cannot leave the restriction). It never grants read,
vread, history or writes: checking those would need the stored resource.

``_include``/``_revinclude`` add resources of other types: each included type needs an
unconditional ``read`` grant (an ``_include`` without a target type needs a wildcard
``*`` read grant), so patient-scoped or restricted tokens cannot use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import parse_qsl

from fhir_ai.fhir.search.query import Criterion, SearchQuery, split_values

Interaction = Literal["read", "vread", "search", "history", "create", "update", "delete"]
Context = Literal["patient", "user", "system"]
INTERACTIONS: tuple[Interaction, ...] = get_args(Interaction)

_V1 = re.compile(r"(patient|user|system)/([A-Z][A-Za-z]{0,63}|\*)\.(read|write|\*)")
_V2 = re.compile(r"(patient|user|system)/([A-Z][A-Za-z]{0,63}|\*)\.(c?r?u?d?s?)(?:\?(.+))?")
_V1_PERMISSIONS: dict[str, frozenset[Interaction]] = {
    "read": frozenset({"read", "vread", "search", "history"}),
    "write": frozenset({"create", "update", "delete"}),
    "*": frozenset(INTERACTIONS),
}
_V2_LETTERS: dict[str, frozenset[Interaction]] = {
    "c": frozenset({"create"}),
    "r": frozenset({"read", "vread", "history"}),
    "u": frozenset({"update"}),
    "d": frozenset({"delete"}),
    "s": frozenset({"search"}),
}
MAX_SCOPES = 200
MAX_SCOPE_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: who (context), which type (or ``*``), which interactions."""

    context: Context
    resource_type: str
    interactions: frozenset[Interaction]
    restrictions: tuple[tuple[str, str], ...] = ()

    def covers(self, resource_type: str, interaction: Interaction) -> bool:
        """True if the type and interaction are named by this scope (before conditions)."""
        return self.resource_type in ("*", resource_type) and interaction in self.interactions

    @property
    def unconditional(self) -> bool:
        """A ``system/`` or ``user/`` scope without query restrictions."""
        return self.context != "patient" and not self.restrictions


def parse_scope(text: str) -> Scope | None:
    """The resource scope ``text`` names, or None when it is not one (or is malformed)."""
    if not text or len(text) > MAX_SCOPE_CHARS:
        return None
    if match := _V1.fullmatch(text):
        context, resource_type, permission = match.groups()
        return Scope(context, resource_type, _V1_PERMISSIONS[permission])  # type: ignore[arg-type]
    match = _V2.fullmatch(text)
    if match is None or not match.group(3):
        return None
    context, resource_type, letters, query = match.groups()
    interactions: frozenset[Interaction] = frozenset().union(
        *(_V2_LETTERS[letter] for letter in letters)
    )
    restrictions: tuple[tuple[str, str], ...] = ()
    if query is not None:
        try:
            restrictions = tuple(parse_qsl(query, strict_parsing=True))
        except ValueError:
            return None
        if not restrictions or any(not key or not value for key, value in restrictions):
            return None
    return Scope(context, resource_type, interactions, restrictions)  # type: ignore[arg-type]


class ScopeSet:
    """The resource scopes of one access token, and the decisions they allow."""

    def __init__(self, scopes: Iterable[Scope], patient: str | None = None) -> None:
        self.scopes = tuple(scopes)
        self.patient = patient or None

    @classmethod
    def parse(cls, value: str | Sequence[str] | None, patient: str | None = None) -> ScopeSet:
        """From a ``scope`` claim (space-separated) or an ``scp`` list; junk is ignored."""
        if value is None:
            words: list[str] = []
        elif isinstance(value, str):
            words = value.split()
        else:
            words = [word for item in value if isinstance(item, str) for word in item.split()]
        parsed = (parse_scope(word) for word in words[:MAX_SCOPES])
        return cls((scope for scope in parsed if scope is not None), patient)

    def __repr__(self) -> str:
        return f"ScopeSet({len(self.scopes)} scopes, patient={self.patient is not None})"

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        """True if an unconditional (``system/``/``user/``, unrestricted) scope grants it.

        ``patient/`` and query-restricted scopes never make this true: they depend on
        the request (see :meth:`permits`).
        """
        return any(s.unconditional and s.covers(resource_type, interaction) for s in self.scopes)

    def mentions(self, resource_type: str, interaction: Interaction) -> bool:
        """True if any scope names the type and interaction, whatever its conditions."""
        return any(scope.covers(resource_type, interaction) for scope in self.scopes)

    def permits(
        self,
        resource_type: str,
        interaction: Interaction,
        *,
        resource_id: str | None = None,
        search: SearchQuery | None = None,
    ) -> bool:
        """The full decision for one interaction, given its id or its parsed search."""
        if search is not None and not self._includes_allowed(search):
            return False
        if self.allows(resource_type, interaction):
            return True
        for scope in self.scopes:
            if not scope.covers(resource_type, interaction):
                continue
            if scope.restrictions and (
                interaction != "search" or search is None
                or not _satisfies(scope.restrictions, search.criteria)
            ):  # fmt: skip
                continue
            if scope.context != "patient":
                return True
            if self.patient is not None and _in_compartment(
                self.patient, resource_type, interaction, resource_id, search
            ):
                return True
        return False

    def _includes_allowed(self, search: SearchQuery) -> bool:
        for include in search.includes:
            if not self.allows(include.target_type or "*", "read"):
                return False
        return all(self.allows(include.source_type, "read") for include in search.revincludes)


def _satisfies(restrictions: tuple[tuple[str, str], ...], criteria: Sequence[Criterion]) -> bool:
    """Every restriction is matched by one ANDed criterion with a subset of its values."""
    for key, value in restrictions:
        name, _, modifier = key.partition(":")
        allowed = set(split_values(value))
        if not any(
            c.name == name
            and (c.modifier or c.target_type or "") == modifier
            and c.values
            and set(c.values) <= allowed
            for c in criteria
        ):
            return False
    return True


def _in_compartment(
    patient: str,
    resource_type: str,
    interaction: Interaction,
    resource_id: str | None,
    search: SearchQuery | None,
) -> bool:
    """The simple patient-compartment rule of ``patient/`` scopes (see the module doc)."""
    if resource_type == "Patient" and interaction in ("read", "vread", "history"):
        return resource_id == patient
    if interaction != "search" or search is None or search.resource_type != resource_type:
        return False
    for c in search.criteria:
        if c.modifier is not None:
            continue
        if resource_type == "Patient":
            if c.name == "_id" and c.values == (patient,):
                return True
        elif _names_patient(c, patient):
            return True
    return False


def _names_patient(criterion: Criterion, patient: str) -> bool:
    """patient=<id>, patient=Patient/<id>, subject=Patient/<id> or subject:Patient=<id>."""
    if criterion.name not in ("patient", "subject"):
        return False
    if criterion.target_type not in (None, "Patient"):
        return False
    if criterion.values == (f"Patient/{patient}",):
        return True
    typed = criterion.target_type == "Patient" or criterion.name == "patient"
    return typed and criterion.values == (patient,)
