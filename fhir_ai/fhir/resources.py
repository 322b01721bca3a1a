"""The one place that imports ``fhir.resources``, and resource validation.

Decision (docs/fhir-validation.md): fhir.resources 8.x has no R4 package; its R4B (4.3.0)
models parse R4 (4.0.1) JSON for every type this server registers (they differ only in
``Extension.valueMeta``, R4-only, and two R4B-only extension types). fhir_core does not
enforce code bindings, so required bindings with a complete code list are checked here,
with the R4 status value sets of the product's types added where the model's list is
open (``+``).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from fhir_ai.errors import InvalidResource

#: R4 required value sets of status elements whose model enumeration is incomplete.
R4_STATUS_CODES: dict[str, frozenset[str]] = {
    "DiagnosticReport": frozenset(
        [
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ),
    "Observation": frozenset(
        [
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ),
}


#: Elements whose ``enum_values`` metadata in fhir.resources 8.3.0 is not a value set
#: (CapabilityStatement.format lists "formats, json, ttl, mime").
_UNRELIABLE_ENUMS = frozenset({"format"})


def model_class(resource_type: str) -> type[FHIRAbstractModel] | None:
    """The R4B model class of a resource type, or None if there is none."""
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise :class:`InvalidResource` listing every problem of ``resource``."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResource("The resource has no resourceType", expression="resourceType")
    cls = model_class(resource_type)
    if cls is None:
        raise InvalidResource(f"Unknown resource type '{resource_type}'", expression="resourceType")
    try:
        model = cls.model_validate(resource)
    except ValidationError as error:
        problems = [_describe(resource_type, e) for e in error.errors(include_url=False)]
        raise InvalidResource("; ".join(problems[:20])) from None
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidResource(f"Invalid {resource_type}: {error}") from None
    problems = list(_binding_problems(model, resource_type))
    status_codes = R4_STATUS_CODES.get(resource_type)
    if status_codes and resource.get("status") not in status_codes:
        problems.append(f"{resource_type}.status: '{resource.get('status')}' is not a valid code")
    if problems:
        raise InvalidResource("; ".join(problems[:20]))


def _describe(resource_type: str, error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown element"
    return f"{resource_type}.{location}: {message}" if location else f"{resource_type}: {message}"


def _binding_problems(model: FHIRAbstractModel, path: str) -> list[str]:
    problems: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name, None)
        if value is None:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        codes = extra.get("enum_values")
        items = value if isinstance(value, list) else [value]
        if isinstance(codes, list) and "+" not in codes and name not in _UNRELIABLE_ENUMS:
            problems += [
                f"{path}.{name}: '{item}' is not one of {', '.join(map(str, codes))}"
                for item in items
                if isinstance(item, str) and item not in codes
            ]
        for item in items:
            if isinstance(item, FHIRAbstractModel):
                problems += _binding_problems(item, f"{path}.{name}")
    return problems
