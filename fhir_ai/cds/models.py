"""CDS Hooks 2.0.1 wire models, response side: cards, service responses and discovery.

Strict pydantic v2 models of what a CDS Service sends: :class:`CdsResponse` (cards and
systemActions) and :class:`DiscoveryResponse`. They check the spec's invariants on
construction (cds-resp-1, 3, 4, 5, 6, summary < 140 characters, enum values) and
serialise without ``null`` or empty members (spec §JSON rules), except the members the
spec needs even when empty (``cards: []``, ``services: []``). Unknown members are
rejected; ``extension`` (reverse-domain keys) is allowed on every object.

The shared pieces live here too: the enums, :class:`CdsModel` (the base) and
:func:`describe_validation_error`, which turns a :class:`pydantic.ValidationError` into a
short message with no input values (they could hold PHI).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    model_validator,
)

from fhir_ai.fhir.references import RELATIVE_REFERENCE
from fhir_ai.ids import time_ordered_uuid

SUMMARY_MAX_CHARS = 139
"""A card summary must be shorter than 140 characters."""

_EXTENSION_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\Z")
_SERVICE_ID = re.compile(r"^[A-Za-z0-9._~-]+\Z")
_MAX_MESSAGE_CHARS = 200


class Indicator(StrEnum):
    """Card urgency (``hard-stop`` and ``success`` are obsolete and rejected)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SelectionBehavior(StrEnum):
    """How many of a card's suggestions the user may accept."""

    AT_MOST_ONE = "at-most-one"
    ANY = "any"


class ActionType(StrEnum):
    """What an action does to its resource."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class LinkType(StrEnum):
    """An ``absolute`` URL or a ``smart`` app launch URL."""

    ABSOLUTE = "absolute"
    SMART = "smart"


class FeedbackOutcome(StrEnum):
    """What the user did with a card (cds-fb-1)."""

    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"


class Hook(StrEnum):
    """The hooks this server supports (HL7 hooks library, R4 contexts)."""

    PATIENT_VIEW = "patient-view"
    ORDER_SELECT = "order-select"
    ORDER_SIGN = "order-sign"
    ENCOUNTER_START = "encounter-start"
    ENCOUNTER_DISCHARGE = "encounter-discharge"
    APPOINTMENT_BOOK = "appointment-book"


def _check_extension(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        raise ValueError("extension must not be empty (leave it out instead)")
    if not all(_EXTENSION_KEY.match(key) for key in value):
        raise ValueError("extension keys must use reverse-domain notation, e.g. com.example.flag")
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


def _check_reference(value: str) -> str:
    if not RELATIVE_REFERENCE.match(value):
        raise ValueError("must be a relative reference of the form ResourceType/id")
    return value


NonEmptyStr = Annotated[str, StringConstraints(strict=True, min_length=1)]
"""A string that is not empty (the spec forbids ``""``)."""
Url = Annotated[NonEmptyStr, AfterValidator(_check_url)]
"""An absolute http(s) URL."""
RelativeReference = Annotated[NonEmptyStr, AfterValidator(_check_reference)]
"""A FHIR relative reference, ``ResourceType/id``."""
Extension = Annotated[dict[str, Any], AfterValidator(_check_extension)]
"""An ``extension`` object: reverse-domain keys, any JSON values."""
Summary = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=SUMMARY_MAX_CHARS)]


def _new_uuid() -> str:
    return time_ordered_uuid()


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, list | dict) and not value)


class CdsModel(BaseModel):
    """Base of every CDS Hooks object: strict, ``extension``-aware, null-free on output.

    Serialising (``model_dump``, ``model_dump_json``, :meth:`to_json_dict`) leaves out
    members that are ``None`` or empty lists/objects, at every level of CDS objects.
    Opaque payloads (FHIR resources, ``extension`` values, prefetch data) are not edited.
    """

    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        validate_assignment=True,
    )

    extension: Extension | None = None

    _keep_when_empty: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Give every field of the new model (but ``_keep_when_empty``) an ``exclude_if``
        that leaves it out when empty, then rebuild the serializer with them.

        pydantic-core then drops the members itself; a wrap ``model_serializer`` doing the
        same called back into Python for every object serialised (a patient-view response
        of six cards: 0.10 ms, against 0.03 ms now).
        """
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for name, info in cls.model_fields.items():
            if name not in cls._keep_when_empty and info.exclude_if is None:
                info.exclude_if = _is_empty
                changed = True
        if changed:
            cls.model_rebuild(force=True)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object to send: enums as strings, no nulls, no empty members."""
        result: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return result


class Coding(CdsModel):
    """CDS Hooks' cut-down Coding: ``system`` and ``code`` required, ``display`` optional."""

    system: NonEmptyStr
    code: NonEmptyStr
    display: NonEmptyStr | None = None


class OverrideReason(Coding):
    """A reason the user may pick to override a card; ``display`` is required (cds-resp-4)."""

    display: NonEmptyStr


class Source(CdsModel):
    """Where a card's guidance comes from."""

    label: NonEmptyStr
    url: Url | None = None
    icon: Url | None = None
    topic: Coding | None = None


class Link(CdsModel):
    """A link on a card: an absolute URL or a SMART app to launch."""

    label: NonEmptyStr
    url: Url
    type: LinkType
    appContext: NonEmptyStr | None = None
    autolaunchable: StrictBool | None = None

    @model_validator(mode="after")
    def _app_context_only_for_smart(self) -> Link:
        if self.appContext is not None and self.type is not LinkType.SMART:
            raise ValueError("appContext is only allowed on smart links (cds-resp-3)")
        return self


class Action(CdsModel):
    """A change to apply to a resource (in a suggestion or in ``systemActions``).

    ``resource`` is required for create and update; delete names its target with
    ``resourceId`` (``resource`` on delete is deprecated, cds-resp-2, and rejected here).
    ``description`` is optional here and required inside suggestions (cds-resp-5).
    """

    type: ActionType
    description: NonEmptyStr | None = None
    resource: dict[str, Any] | None = None
    resourceId: RelativeReference | None = None

    @model_validator(mode="after")
    def _check_target(self) -> Action:
        if self.type is ActionType.DELETE:
            if self.resourceId is None:
                raise ValueError("a delete action needs resourceId (cds-resp-2)")
            if self.resource is not None:
                raise ValueError("a delete action uses resourceId, not resource (cds-resp-2)")
        elif self.resource is None:
            raise ValueError(f"a {self.type.value} action needs resource")
        if self.resource is not None:
            kind = self.resource.get("resourceType")
            if not isinstance(kind, str) or not kind:
                raise ValueError("resource must be a FHIR resource with a resourceType")
        return self


class Suggestion(CdsModel):
    """A set of actions the user may accept together (processed like a transaction)."""

    label: NonEmptyStr
    uuid: NonEmptyStr = Field(default_factory=_new_uuid)
    isRecommended: StrictBool | None = None
    actions: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _actions_have_description(self) -> Suggestion:
        for index, action in enumerate(self.actions):
            if action.description is None:
                raise ValueError(
                    f"actions[{index}].description is required in a suggestion (cds-resp-5)"
                )
        return self


class Card(CdsModel):
    """One piece of guidance; ``uuid`` defaults to a fresh UUID so feedback can name it."""

    uuid: NonEmptyStr = Field(default_factory=_new_uuid)
    summary: Summary
    detail: NonEmptyStr | None = None
    indicator: Indicator
    source: Source
    suggestions: list[Suggestion] = Field(default_factory=list)
    selectionBehavior: SelectionBehavior | None = None
    overrideReasons: list[OverrideReason] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_suggestions(self) -> Card:
        if not self.suggestions:
            return self
        if self.selectionBehavior is None:
            raise ValueError(
                "selectionBehavior is required when suggestions are present (cds-resp-6)"
            )
        recommended = sum(1 for s in self.suggestions if s.isRecommended)
        if self.selectionBehavior is SelectionBehavior.AT_MOST_ONE and recommended > 1:
            raise ValueError(
                "at most one suggestion may be isRecommended when selectionBehavior is "
                "at-most-one (cds-resp-1)"
            )
        _require_unique((s.uuid for s in self.suggestions), "suggestion uuid")
        return self


class CdsResponse(CdsModel):
    """A service's answer: ``cards`` (``[]`` means no guidance) and ``systemActions``."""

    _keep_when_empty: ClassVar[frozenset[str]] = frozenset({"cards"})

    cards: list[Card]
    systemActions: list[Action] = Field(default_factory=list)

    @classmethod
    def no_guidance(cls) -> CdsResponse:
        """``{"cards": []}``."""
        return cls(cards=[])

    @model_validator(mode="after")
    def _unique_card_uuids(self) -> CdsResponse:
        _require_unique((card.uuid for card in self.cards), "card uuid")
        return self


class ServiceDescriptor(CdsModel):
    """One entry of the discovery response; the same ``id`` may appear under several hooks."""

    hook: NonEmptyStr
    title: NonEmptyStr | None = None
    description: NonEmptyStr
    id: NonEmptyStr
    prefetch: dict[NonEmptyStr, NonEmptyStr] = Field(default_factory=dict)
    usageRequirements: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _id_is_a_path_segment(self) -> ServiceDescriptor:
        if not _SERVICE_ID.match(self.id):
            raise ValueError("id must be a URL path segment (letters, digits, . _ ~ -)")
        return self


class DiscoveryResponse(CdsModel):
    """``GET /cds-services``: ``{"services": [...]}``, possibly empty."""

    _keep_when_empty: ClassVar[frozenset[str]] = frozenset({"services"})

    services: list[ServiceDescriptor]

    @model_validator(mode="after")
    def _unique_services(self) -> DiscoveryResponse:
        _require_unique((f"{s.id} {s.hook}" for s in self.services), "service (id, hook) pair")
        return self


def _require_unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"each {what} must be unique")
        seen.add(value)


def _format_location(location: tuple[int | str, ...], prefix: str) -> str:
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """A short message listing each failing field path and why; never the input values.

    ``prefix`` is prepended to every path (for example ``"context"``).
    """
    parts: list[str] = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        message = message[:_MAX_MESSAGE_CHARS]
        path = _format_location(item["loc"], prefix)
        text = f"{path}: {message}" if path else message
        if text not in parts:
            parts.append(text)
    return "; ".join(parts) if parts else "invalid input"


def first_error_path(error: ValidationError, *, prefix: str = "") -> str | None:
    """The path of the first failing field (for an OperationOutcome ``expression``)."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    if not errors:
        return prefix or None
    return _format_location(errors[0]["loc"], prefix) or None
