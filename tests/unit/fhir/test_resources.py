"""Resource validation with the R4B models and the bindings checked on top."""

from __future__ import annotations

import pytest

from fhir_ai.errors import InvalidResource
from fhir_ai.fhir.resources import validate_resource


def test_valid_resource_passes() -> None:
    validate_resource({"resourceType": "Patient", "gender": "female", "birthDate": "1970"})
    validate_resource(
        {"resourceType": "DiagnosticReport", "status": "amended", "code": {"text": "x"}}
    )


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({}, "no resourceType"),
        ({"resourceType": "Nope"}, "Unknown resource type"),
        ({"resourceType": "Patient", "gender": "robot"}, "gender"),
        ({"resourceType": "Patient", "birthDate": "1970-13"}, "birthDate"),
        ({"resourceType": "Patient", "colour": "blue"}, "unknown element"),
        ({"resourceType": "DiagnosticReport", "code": {"text": "x"}}, "status"),
        ({"resourceType": "DiagnosticReport", "status": "bogus", "code": {"text": "x"}}, "status"),
        ({"resourceType": "Observation", "status": "partial", "code": {"text": "x"}}, "status"),
    ],
)
def test_invalid_resources_say_what_is_wrong(resource: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidResource, match=message):
        validate_resource(resource)
