"""CDS Hooks 2.0.1 wire models, request side: service calls, hook contexts and feedback.

* :class:`CdsRequest` is the body of ``POST /cds-services/{id}``. Its ``context`` stays a
  plain object; :func:`parse_context` (or :meth:`CdsRequest.hook_context`) checks it
  against the hook's context model and raises :class:`~fhir_ai.errors.InvalidRequest`
  naming the field at fault. Context models accept extra fields (hooks evolve).
* :class:`FhirAuthorization` keeps ``access_token`` as a secret: it never shows in
  ``repr``/``str``/``model_dump_json`` unless asked with ``context={"reveal_secrets": True}``;
  :meth:`FhirAuthorization.bearer_token` gives the raw token to the HTTP client.
* :class:`FeedbackRequest` is the body of ``POST /cds-services/{id}/feedback``.
* Prefetch: each context model names its prefetch-token fields
  (:attr:`HookContext.prefetch_tokens`, the ``token_fields`` of
  :func:`fhir_ai.cds.prefetch.render_template`), and
  :func:`prefetch_template_problems` checks a template's tokens against CDS Hooks 2.0.1.

Inbound objects ignore members they do not know (the spec does not forbid them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    SecretStr,
    StrictInt,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from fhir_ai.cds.models import (
    CdsModel,
    Coding,
    FeedbackOutcome,
    Hook,
    NonEmptyStr,
    Url,
    describe_validation_error,
    first_error_path,
)
from fhir_ai.errors import InvalidRequest
from fhir_ai.fhir.references import FHIR_ID, RELATIVE_REFERENCE

MASK = "**********"
"""What a secret serialises to unless ``reveal_secrets`` is set in the context."""

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")
_TEMPLATE_TOKEN = re.compile(r"\{\{(.*?)\}\}")
_SAFE_HOOK_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")

USER_TOKENS: dict[str, str] = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
"""The 2.0.1 user prefetch tokens and the ``userId`` resource type each is taken from."""

CLINICIAN_TYPES = frozenset({"Practitioner", "PractitionerRole"})
ANY_USER_TYPES = CLINICIAN_TYPES | {"Patient", "RelatedPerson"}


def _check_fhir_id(value: str) -> str:
    if not FHIR_ID.match(value):
        raise ValueError("must be a FHIR id (1-64 characters: letters, digits, '-', '.')")
    return value


def _check_rfc3339(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, e.g. 2021-12-11T10:05:31Z"
        )
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def _check_uuid(value: str) -> str:
    try:
        UUID(value)
    except ValueError:
        raise ValueError("must be a UUID") from None
    return value


def _check_bundle(value: dict[str, Any]) -> dict[str, Any]:
    if value.get("resourceType") != "Bundle":
        raise ValueError("must be a FHIR Bundle (resourceType 'Bundle')")
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        raise ValueError("entry must be an array")
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"entry[{index}] must hold a resource with a resourceType")
    return value


def _check_appointments(value: dict[str, Any]) -> dict[str, Any]:
    for index, entry in enumerate(value.get("entry", [])):
        if entry["resource"]["resourceType"] != "Appointment":
            raise ValueError(f"entry[{index}] must be an Appointment")
    return value


def _bearer(value: Any) -> Any:
    # RFC 6749 §5.1: the token type is case-insensitive.
    return "Bearer" if isinstance(value, str) and value.lower() == "bearer" else value


FhirId = Annotated[NonEmptyStr, AfterValidator(_check_fhir_id)]
"""A FHIR resource id; safe to put into a URL."""
Bundle = Annotated[dict[str, Any], AfterValidator(_check_bundle)]
"""A FHIR Bundle whose entries each hold a resource."""
AppointmentBundle = Annotated[Bundle, AfterValidator(_check_appointments)]
Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_check_rfc3339)]
UuidStr = Annotated[NonEmptyStr, AfterValidator(_check_uuid)]


class _Inbound(CdsModel):
    """An object a CDS client sends: unknown members are ignored, not rejected."""

    model_config = ConfigDict(extra="ignore")


class FhirAuthorization(_Inbound):
    """The OAuth 2.0 token the service may use on ``fhirServer``; never log it."""

    access_token: SecretStr
    token_type: Annotated[Literal["Bearer"], BeforeValidator(_bearer)]
    expires_in: Annotated[StrictInt, Field(ge=0)]
    scope: NonEmptyStr
    subject: NonEmptyStr
    patient: FhirId | None = None

    @field_validator("access_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_serializer("access_token", when_used="always")
    def _mask_token(self, value: SecretStr, info: FieldSerializationInfo) -> str:
        context = info.context
        if isinstance(context, Mapping) and context.get("reveal_secrets") is True:
            return value.get_secret_value()
        return MASK

    def bearer_token(self) -> str:
        """The raw access token, for the ``Authorization`` header of FHIR calls only."""
        return self.access_token.get_secret_value()

    def authorization_header(self) -> str:
        """``Bearer <access_token>``."""
        return f"Bearer {self.bearer_token()}"

    @property
    def scopes(self) -> list[str]:
        """The granted SMART scopes."""
        return self.scope.split()


class HookContext(BaseModel):
    """Fields every supported hook's context has; subclasses add the hook's own.

    ``prefetch_tokens`` are the root-level primitive fields usable as
    ``{{context.<field>}}``; ``user_types`` are the resource types ``userId`` may name.
    Extra fields are kept (``model_extra``) and are never prefetch tokens.
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True, frozen=True)

    hook: ClassVar[Hook]
    user_types: ClassVar[frozenset[str]] = CLINICIAN_TYPES
    prefetch_tokens: ClassVar[frozenset[str]] = frozenset({"userId", "patientId", "encounterId"})

    userId: NonEmptyStr
    patientId: FhirId
    encounterId: FhirId | None = None

    @field_validator("userId")
    @classmethod
    def _user_reference(cls, value: str) -> str:
        match = RELATIVE_REFERENCE.match(value)
        if match is None or match.group(1) not in cls.user_types:
            allowed = ", ".join(sorted(cls.user_types))
            raise ValueError(f"must be a reference Type/id with Type one of {allowed}")
        return value

    def token_values(self) -> dict[str, str]:
        """Every 2.0.1 prefetch token with a value here: ``context.<field>`` and user tokens."""
        values: dict[str, str] = {}
        for name in sorted(self.prefetch_tokens):
            value = getattr(self, name, None)
            if isinstance(value, str):
                values[f"context.{name}"] = value
        user_type, user_id = self.userId.split("/", 1)
        for token, resource_type in USER_TOKENS.items():
            if resource_type == user_type:
                values[token] = user_id
        return values


class PatientViewContext(HookContext):
    """``patient-view``: the user opened a patient's record."""

    hook = Hook.PATIENT_VIEW
    user_types = ANY_USER_TYPES


class OrderSelectContext(HookContext):
    """``order-select``: the user selected orders; ``selections`` name draftOrders entries."""

    hook = Hook.ORDER_SELECT

    selections: Annotated[list[NonEmptyStr], Field(min_length=1)]
    draftOrders: Bundle

    @model_validator(mode="after")
    def _selections_in_draft_orders(self) -> OrderSelectContext:
        drafts = {
            f"{entry['resource']['resourceType']}/{entry['resource'].get('id')}"
            for entry in self.draftOrders.get("entry", [])
        }
        for index, selection in enumerate(self.selections):
            if not RELATIVE_REFERENCE.match(selection):
                raise ValueError(f"selections[{index}] must be a reference Type/id")
            if selection not in drafts:
                raise ValueError(f"selections[{index}] does not name a draftOrders entry")
        return self


class OrderSignContext(HookContext):
    """``order-sign``: the user is about to sign ``draftOrders``."""

    hook = Hook.ORDER_SIGN

    draftOrders: Bundle


class EncounterStartContext(HookContext):
    """``encounter-start``: an encounter is starting; ``encounterId`` is required."""

    hook = Hook.ENCOUNTER_START

    encounterId: FhirId


class EncounterDischargeContext(HookContext):
    """``encounter-discharge``: an encounter is ending; ``encounterId`` is required."""

    hook = Hook.ENCOUNTER_DISCHARGE

    encounterId: FhirId


class AppointmentBookContext(HookContext):
    """``appointment-book``: appointments are being booked (the user may be the patient)."""

    hook = Hook.APPOINTMENT_BOOK
    user_types = ANY_USER_TYPES

    appointments: AppointmentBundle


CONTEXT_MODELS: dict[Hook, type[HookContext]] = {
    model.hook: model
    for model in (
        PatientViewContext,
        OrderSelectContext,
        OrderSignContext,
        EncounterStartContext,
        EncounterDischargeContext,
        AppointmentBookContext,
    )
}
"""The context model of each supported hook."""


def supported_hook(hook: Hook | str) -> Hook | None:
    """The :class:`Hook` named ``hook``, or None if this server does not support it."""
    try:
        return Hook(hook)
    except ValueError:
        return None


def context_model(hook: Hook | str) -> type[HookContext]:
    """The context model of ``hook``; :class:`InvalidRequest` if it is not supported."""
    known = supported_hook(hook)
    if known is None:
        name = f" '{hook}'" if _SAFE_HOOK_NAME.match(str(hook)) else ""
        supported = ", ".join(h.value for h in Hook)
        raise InvalidRequest(f"hook{name} is not supported (supported: {supported})",
                             expression="hook")  # fmt: skip
    return CONTEXT_MODELS[known]


def parse_context(hook: Hook | str, context: Mapping[str, Any]) -> HookContext:
    """Check ``context`` against ``hook``'s context model.

    Raises :class:`InvalidRequest` naming each missing or invalid field
    (``context.patientId: Field required``), without echoing values.
    """
    model = context_model(hook)
    if not isinstance(context, Mapping):
        raise InvalidRequest("context must be a JSON object", expression="context")
    try:
        return model.model_validate(dict(context))
    except ValidationError as error:
        raise InvalidRequest(
            describe_validation_error(error, prefix="context"),
            expression=first_error_path(error, prefix="context"),
        ) from error


def prefetch_token_fields(hook: Hook | str) -> frozenset[str]:
    """The context fields of ``hook`` usable as ``{{context.<field>}}`` tokens."""
    return context_model(hook).prefetch_tokens


def template_tokens(template: str) -> list[str]:
    """The token expressions in a prefetch template, stripped (``context.patientId``)."""
    tokens = [match.strip() for match in _TEMPLATE_TOKEN.findall(template)]
    leftover = _TEMPLATE_TOKEN.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise ValueError("prefetch template has an unbalanced '{{' or '}}'")
    return tokens


def prefetch_template_problems(hook: Hook | str, template: str) -> list[str]:
    """Why ``template`` is not a valid 2.0.1 prefetch template for ``hook`` (empty if it is).

    Valid tokens are ``context.<field>`` for the hook's prefetch-token fields and the four
    user tokens whose resource type the hook's ``userId`` may have. 3.0 FHIRPath tokens
    (``today()``, ``%key``, paths into resources) are reported as unsupported.
    """
    model = context_model(hook)
    try:
        tokens = template_tokens(template)
    except ValueError as error:
        return [str(error)]
    problems: list[str] = []
    for token in tokens:
        if token.startswith("context."):
            field = token.removeprefix("context.")
            if field not in model.prefetch_tokens:
                problems.append(
                    f"{{{{{token}}}}} is not a 2.0.1 prefetch token of {model.hook.value} "
                    "(only root-level primitive context fields marked as tokens; "
                    "FHIRPath tokens are CDS Hooks 3.0)"
                )
        elif token in USER_TOKENS:
            if USER_TOKENS[token] not in model.user_types:
                problems.append(f"{{{{{token}}}}} can never be filled for {model.hook.value}")
        else:
            problems.append(
                f"{{{{{token}}}}} is not a CDS Hooks 2.0.1 token (FHIRPath tokens are 3.0)"
            )
    return problems


class CdsRequest(_Inbound):
    """The body of a service call. ``context``/``prefetch`` are left out of ``repr`` (PHI)."""

    hook: NonEmptyStr
    hookInstance: UuidStr
    fhirServer: Url | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any] = Field(repr=False)
    prefetch: dict[NonEmptyStr, Any] = Field(default_factory=dict, repr=False)

    @field_validator("prefetch")
    @classmethod
    def _prefetch_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if isinstance(item, dict) and not isinstance(item.get("resourceType"), str):
                raise ValueError(f"prefetch value '{key}' must be a FHIR resource or null")
        return value

    @model_validator(mode="after")
    def _server_for_authorization(self) -> CdsRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present (cds-r-1)")
        return self

    @property
    def supported_hook(self) -> Hook | None:
        """The request's hook, if this server supports it."""
        return supported_hook(self.hook)

    def hook_context(self) -> HookContext:
        """:func:`parse_context` of this request's hook and context."""
        return parse_context(self.hook, self.context)


class AcceptedSuggestion(_Inbound):
    """A suggestion the user accepted, by its ``uuid``."""

    id: NonEmptyStr


class FeedbackOverrideReason(_Inbound):
    """Why the user overrode a card: a reason Coding, a comment, or both (cds-fb-3)."""

    reason: Coding | None = None
    userComment: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _reason_or_comment(self) -> FeedbackOverrideReason:
        if self.reason is None and self.userComment is None:
            raise ValueError("overrideReason needs reason or userComment (cds-fb-3)")
        return self


class FeedbackItem(_Inbound):
    """What the user did with one card."""

    card: NonEmptyStr
    outcome: FeedbackOutcome
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list)
    overrideReason: FeedbackOverrideReason | None = None
    outcomeTimestamp: Rfc3339

    @model_validator(mode="after")
    def _accepted_needs_suggestions(self) -> FeedbackItem:
        if self.outcome is FeedbackOutcome.ACCEPTED and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is accepted (cds-fb-2)")
        return self

    @property
    def accepted_suggestion_ids(self) -> list[str]:
        """The uuids of the accepted suggestions."""
        return [item.id for item in self.acceptedSuggestions]


class FeedbackRequest(_Inbound):
    """The body of ``POST /cds-services/{id}/feedback``: at least one item."""

    feedback: Annotated[list[FeedbackItem], Field(min_length=1)]


__all__ = [
    "ANY_USER_TYPES",
    "CLINICIAN_TYPES",
    "CONTEXT_MODELS",
    "MASK",
    "USER_TOKENS",
    "AcceptedSuggestion",
    "AppointmentBookContext",
    "CdsRequest",
    "EncounterDischargeContext",
    "EncounterStartContext",
    "FeedbackItem",
    "FeedbackOverrideReason",
    "FeedbackRequest",
    "FhirAuthorization",
    "FhirId",
    "HookContext",
    "OrderSelectContext",
    "OrderSignContext",
    "PatientViewContext",
    "context_model",
    "parse_context",
    "prefetch_template_problems",
    "prefetch_token_fields",
    "supported_hook",
    "template_tokens",
]
