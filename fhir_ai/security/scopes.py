"""SMART on FHIR scopes (App Launch 1.0 and 2.x) and what they let a token do.

Grammar understood (anything else, such as ``openid``, ``launch/patient`` or a
malformed scope, is ignored and grants nothing)::

    v1: (patient|user|system)/(Type|*).(read|write|*)
    v2: (patient|user|system)/(Type|*).<c?r?u?d?s?>[?param=value&...]

Interactions: v1 ``read`` = read, vread, search, history; v1 ``write`` = create, update,
delete; v1 ``*`` = all. v2 ``c`` = create, ``r`` = read, vread, history (instance),
``u`` = update, ``d`` = delete, ``s`` = search.

Contexts:

* ``system/`` grants the interaction on every resource of the type.
* ``user/`` is treated like ``system/``: this server keeps no record of what each user
  may see, so the authorization server is trusted to have granted only what the user may
  do (it knows the user; we do not). The token's ``fhirUser`` claim, when it names the
  user's resource (``Practitioner/123``, or an absolute URL of one), is recorded as the
  ``agent.who`` of the request's AuditEvent (see :mod:`fhir_ai.audit`), so what a user
  did through an app can be traced to that user.
* ``patient/`` needs the token's ``patient`` claim (the launch context) and grants the
  interaction only inside that patient's compartment, following the FHIR R4
  CompartmentDefinition Patient (:mod:`fhir_ai.fhir.search.compartment`):

  - types that can be in the compartment (Observation, Condition, Encounter, Patient...):
    the request is *confined*: reads, searches, includes and writes see only resources
    whose compartment parameters (Observation: ``subject``, ``performer``...) name the
    patient; a Patient is in it as the patient itself or through ``link``. A search
    needs no ``patient`` parameter: its results are limited to the compartment. The
    store enforces this inside its own queries (:mod:`fhir_ai.store.repository`): a
    read outside the compartment is answered 404 as if the resource did not exist (FHIR
    R4 security.html "Access Denied Response Handling" recommends a 404 so that an
    unauthorised client learns nothing of other patients' records; US Core allows
    401/403/404), a search leaves such resources out, a create or update outside it is
    403 and a delete 404 (the store's module doc has the details: deleted resources,
    history, and a Patient being writable only as the patient itself);
  - the types that describe who and where care was given, which a patient's record
    points to and an app needs to show it (:data:`PATIENT_SHARED_TYPES`: Practitioner,
    PractitionerRole, Organization, Location, Medication): read and search of all of
    them, never writes. SMART leaves this to servers (HL7 smart-app-launch issue #68:
    ``patient/*`` should reach resources "linked to from the record and helpful in
    interpreting the record", like Practitioner, Location, Organization; the ONC (g)(10)
    tests read Practitioner with ``patient/*.read``);
  - every other type (Task, Binary, Device, Endpoint, Subscription...): refused. They
    are outside the compartment yet may name patients (a Device's ``patient``, a Task's
    ``for``, the bytes of a Binary), so they cannot be shown whole to a patient's app.

  Extended operations (``$analyze``, ``$extract``) are refused to ``patient/`` grants:
  they start work on the server and are not confined by the store.

v2 query restrictions (``system/Observation.rs?category=laboratory``): a restricted
scope grants only searches whose parsed criteria include, for every restriction, the
same parameter (and modifier) with values that are a subset of the restriction's values
(criteria are ANDed, so the result cannot leave the restriction). It never grants read,
vread, history or writes: checking those would need the stored resource.

``_include``/``_revinclude`` add resources of other types: each included type needs a
``read`` grant (an ``_include`` without a target type needs an unconditional wildcard
``*`` read grant); included types granted by ``patient/`` scopes are confined too, so a
patient-scoped search cannot include another patient's resources.

A :class:`Decision` says whether the request is allowed and which types it must be
confined to; the guard (:mod:`fhir_ai.security.fhir_access`) hands them to the store.
When a ``system/`` or ``user/`` scope also grants the interaction, it wins: no confinement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import parse_qsl

from fhir_ai.fhir.search.compartment import CompartmentDefinition, patient_compartment
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
_READS: frozenset[Interaction] = frozenset({"read", "vread", "history", "search"})
#: Types outside the Patient compartment that ``patient/`` read scopes show whole.
PATIENT_SHARED_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Location", "Medication"}
)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request is allowed, and the types it must be confined to the patient's
    compartment for (those granted only by ``patient/`` scopes)."""

    allowed: bool
    confined: frozenset[str] = frozenset()

    def __and__(self, other: Decision) -> Decision:
        """Both parts of one request: allowed if both are, confined as either is."""
        return Decision(self.allowed and other.allowed, self.confined | other.confined)


ALLOWED = Decision(True)
DENIED = Decision(False)


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

    def __init__(
        self,
        scopes: Iterable[Scope],
        patient: str | None = None,
        compartment: CompartmentDefinition | None = None,
    ) -> None:
        self.scopes = tuple(scopes)
        self.patient = patient or None
        self.compartment = compartment or patient_compartment()

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
        the request (see :meth:`decide`).
        """
        return any(s.unconditional and s.covers(resource_type, interaction) for s in self.scopes)

    def mentions(self, resource_type: str, interaction: Interaction) -> bool:
        """True if any scope names the type and interaction, whatever its conditions."""
        return any(scope.covers(resource_type, interaction) for scope in self.scopes)

    def decide(
        self, resource_type: str, interaction: Interaction, *, search: SearchQuery | None = None
    ) -> Decision:
        """The decision for one interaction, given its parsed search (with its includes)."""
        decision = self._grant(resource_type, interaction, search)
        if search is None or not decision.allowed:
            return decision
        for include in search.includes:
            if include.target_type is None:
                if not self.allows("*", "read"):
                    return DENIED
            else:
                decision &= self._grant(include.target_type, "read", None)
        for include in search.revincludes:
            decision &= self._grant(include.source_type, "read", None)
        return decision if decision.allowed else DENIED

    def _grant(
        self, resource_type: str, interaction: Interaction, search: SearchQuery | None
    ) -> Decision:
        """The broadest grant of one interaction on one type (includes aside)."""
        if self.allows(resource_type, interaction):
            return ALLOWED
        patient_scope = False  # a patient/ scope grants it, within the patient's records
        for scope in self.scopes:
            if not scope.covers(resource_type, interaction):
                continue
            if scope.restrictions and (
                interaction != "search" or search is None
                or not _satisfies(scope.restrictions, search.criteria)
            ):  # fmt: skip
                continue
            if scope.context != "patient":
                return ALLOWED
            patient_scope = True
        if not patient_scope or self.patient is None:
            return DENIED
        if self.compartment.includes(resource_type):
            return Decision(True, frozenset({resource_type}))
        if resource_type in PATIENT_SHARED_TYPES and interaction in _READS:
            return ALLOWED
        return DENIED


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
