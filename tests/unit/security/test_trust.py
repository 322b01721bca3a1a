"""load_issuers: the trusted-issuer configuration file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ai.errors import ConfigurationError
from fhir_ai.security.cds_jwt import TrustedIssuer, load_issuers


def write(path: Path, document: Any) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_loads_the_documented_format(tmp_path: Path, jwks_file: Path) -> None:
    assert jwks_file == tmp_path / "keys" / "ehr.json"
    config = write(
        tmp_path / "issuers.json",
        {
            "issuers": [
                {"iss": "https://sandbox.cds-hooks.org", "jwks_file": "keys/ehr.json"},
                {
                    "iss": "https://ehr.example",
                    "jku": ["https://ehr.example/jwks.json"],
                    "tenants": ["t1"],
                },
                {
                    "iss": "https://epic.example",
                    "jku": "https://epic.example/keys",
                    "jwks_file": str(jwks_file),
                },
            ]
        },
    )
    issuers = load_issuers(config)
    assert issuers["https://sandbox.cds-hooks.org"] == TrustedIssuer(
        iss="https://sandbox.cds-hooks.org", jwks_file=jwks_file.resolve()
    )
    ehr = issuers["https://ehr.example"]
    assert ehr.jku == ("https://ehr.example/jwks.json",)
    assert ehr.tenants == frozenset({"t1"})
    assert ehr.jwks_file is None
    assert issuers["https://epic.example"].jku == ("https://epic.example/keys",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "cannot read"),
        ({"issuer": []}, "invalid trusted issuers"),
        ({"issuers": [{"iss": "https://a.example"}]}, "needs jwks_file or jku"),
        ({"issuers": [{"iss": "", "jku": "https://a.example/k"}]}, "iss must not be empty"),
        ({"issuers": [{"iss": "x", "jku": "http://a.example/k"}]}, "must be https"),
        ({"issuers": [{"iss": "x", "jku": "https://a.example/k", "tenants": []}]}, "tenants"),
        ({"issuers": [{"iss": "x", "jku": "https://a.example/k", "jwk": 1}]}, "jwk"),
        ({"issuers": [{"iss": "x", "jwks_file": "missing.json"}]}, "bad jwks_file"),
        ({"issuers": [{"iss": "x", "jwks_file": "issuers.json"}]}, "bad jwks_file"),
        (
            {"issuers": [{"iss": "x", "jku": "https://a/k"}, {"iss": "x", "jku": "https://b/k"}]},
            "listed twice",
        ),
    ],
)
def test_invalid_configuration(tmp_path: Path, document: Any, message: str) -> None:
    config = write(tmp_path / "issuers.json", document)
    with pytest.raises(ConfigurationError, match=message):
        load_issuers(config)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_issuers(tmp_path / "absent.json")


def test_loopback_http_jku_is_allowed_for_tests() -> None:
    issuer = TrustedIssuer(iss="x", jku=["http://127.0.0.1:8080/jwks", "http://localhost/k"])
    assert len(issuer.jku) == 2
