"""Logical ids and relative references (``fhir_ai.fhir.references``)."""

from __future__ import annotations

import pytest

from fhir_ai.fhir.references import FHIR_ID, RELATIVE_REFERENCE, split_reference


@pytest.mark.parametrize("value", ["a", "123", "example-1.2", "A" * 64])
def test_a_valid_logical_id_matches(value: str) -> None:
    assert FHIR_ID.match(value)


@pytest.mark.parametrize("value", ["", "A" * 65, "a_b", "a/b", "a b", "é", "a\n"])
def test_an_invalid_logical_id_does_not_match(value: str) -> None:
    assert not FHIR_ID.match(value)


def test_a_relative_reference_gives_its_type_and_id() -> None:
    match = RELATIVE_REFERENCE.match("Patient/example-1")
    assert match is not None
    assert match.groups() == ("Patient", "example-1")


@pytest.mark.parametrize(
    "value",
    [
        "patient/1",
        "Patient/",
        "Patient/1\n",
        "Patient/1/_history/2",
        "http://x/fhir/Patient/1",
        "Patient/a_b",
    ],
)
def test_anything_else_is_not_a_relative_reference(value: str) -> None:
    assert not RELATIVE_REFERENCE.match(value)


def test_split_reference_keeps_the_version() -> None:
    assert split_reference("Observation/o1/_history/3") == ("Observation", "o1", "3")
    assert split_reference("Observation/o1") == ("Observation", "o1", "")
