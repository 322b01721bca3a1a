"""The JWT pieces shared by the CDS and SMART verifiers."""

from __future__ import annotations

import pytest

from fhir_ai.security.jwt_claims import (
    MAX_CLAIM_CHARS,
    bearer_token,
    loggable,
    number_claim,
    string_claim,
)
from fhir_ai.security.trust import AuthenticationFailed


def test_bearer_token() -> None:
    assert bearer_token("Bearer a.b.c") == "a.b.c"
    assert bearer_token("  bearer   a-1.b_2.c3 ") == "a-1.b_2.c3"
    for header, reason in [
        (None, "missing authorization"),
        ("  ", "missing authorization"),
        ("Basic dXNlcg==", "not a bearer token"),
        ("Bearer a.b", "malformed token"),
        ("Bearer " + "a" * 20_000 + ".b.c", "malformed token"),
    ]:
        with pytest.raises(AuthenticationFailed) as failure:
            bearer_token(header)
        assert failure.value.reason == reason


def test_numeric_and_string_claims() -> None:
    claims = {"exp": 10, "iat": 1.5, "bad": True, "nan": float("nan"), "sub": "s"}
    assert number_claim(claims, "exp") == 10.0 and number_claim(claims, "iat") == 1.5
    assert number_claim(claims, "nbf") is None and string_claim(claims, "tenant") is None
    assert string_claim(claims, "sub") == "s"
    for name in ("bad", "nan", "sub"):
        with pytest.raises(AuthenticationFailed, match="authentication failed"):
            number_claim(claims, name)
    for value in ("", "x" * (MAX_CLAIM_CHARS + 1), 7):
        with pytest.raises(AuthenticationFailed):
            string_claim({"sub": value}, "sub")


def test_loggable_values_are_short_and_printable() -> None:
    assert loggable(None) is None
    assert loggable("iss\nwith\x00controls") == "iss?with?controls"
    assert len(loggable("x" * 1000) or "") == 200
