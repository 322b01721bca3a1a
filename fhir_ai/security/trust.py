"""Who is trusted: the issuer allow-list, its configuration file, and the one auth failure.

The configuration file is JSON::

    {"issuers": [
        {"iss": "https://sandbox.cds-hooks.org", "jwks_file": "keys/sandbox.json"},
        {"iss": "https://ehr.example", "jku": ["https://ehr.example/jwks.json"],
         "tenants": ["t1"]}
    ]}

``jwks_file`` is a pre-shared JWKS (relative paths are resolved against the folder of
the configuration file); ``jku`` is a URL or a list of URLs the issuer may name in its
JWT header (never any other URL is fetched); ``tenants`` optionally restricts the
``tenant`` claim. An issuer needs ``jwks_file``, ``jku`` or both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from fhir_ai.errors import ConfigurationError, FhirAiError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class AuthenticationFailed(FhirAiError):
    """The caller's JWT is missing or invalid; answer 401 with no details.

    ``message`` is always the generic ``"authentication failed"``; ``reason`` says why
    (for example ``"expired"`` or ``"unknown kid"``) and is meant for the server's log
    only, never for the client.
    """

    http_status: ClassVar[int] = 401
    issue_code: ClassVar[str] = "login"

    def __init__(self, reason: str) -> None:
        super().__init__("authentication failed")
        self.reason = reason


def is_allowed_jwks_url(url: str) -> bool:
    """True for ``https`` URLs, and ``http`` ones only on the loopback interface."""
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


class TrustedIssuer(BaseModel):
    """One CDS client allowed to call us, and where its signing keys come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iss: str
    jwks_file: Path | None = None
    jku: tuple[str, ...] = ()
    tenants: frozenset[str] | None = None

    @field_validator("iss")
    @classmethod
    def _iss_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("iss must not be empty")
        return value

    @field_validator("jku", mode="before")
    @classmethod
    def _jku_as_tuple(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return value

    @field_validator("jku")
    @classmethod
    def _jku_urls_allowed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not is_allowed_jwks_url(url):
                raise ValueError(f"jku {url!r} must be https (http only on loopback)")
        return value

    @field_validator("tenants")
    @classmethod
    def _tenants_not_empty(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is not None and not value:
            raise ValueError("tenants must list at least one tenant (or be left out)")
        return value

    @model_validator(mode="after")
    def _has_key_source(self) -> TrustedIssuer:
        if self.jwks_file is None and not self.jku:
            raise ValueError(f"issuer {self.iss!r} needs jwks_file or jku")
        return self


class _IssuersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuers: list[TrustedIssuer]


def read_jwks_file(path: Path) -> dict[str, Any]:
    """Read a JWKS JSON file; raises ``ValueError``/``OSError`` when it is not one."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f"{path} is not a JWKS (an object with a 'keys' list)")
    return document


def load_issuers(path: Path) -> dict[str, TrustedIssuer]:
    """Read the trusted-issuer file at ``path``, keyed by ``iss``.

    Raises ``ConfigurationError`` naming the file and the problem when the file is
    missing, not JSON, has unknown fields, repeats an issuer, or points at a JWKS file
    that cannot be read.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read trusted issuers from {path}: {error}") from error
    try:
        parsed = _IssuersFile.model_validate(raw)
    except ValidationError as error:
        raise ConfigurationError(f"invalid trusted issuers file {path}: {error}") from error
    issuers: dict[str, TrustedIssuer] = {}
    for issuer in parsed.issuers:
        if issuer.iss in issuers:
            raise ConfigurationError(f"issuer {issuer.iss!r} is listed twice in {path}")
        if issuer.jwks_file is not None:
            jwks_path = issuer.jwks_file
            if not jwks_path.is_absolute():
                jwks_path = (path.parent / jwks_path).resolve()
            try:
                read_jwks_file(jwks_path)
            except (OSError, ValueError) as error:
                raise ConfigurationError(
                    f"issuer {issuer.iss!r} in {path}: bad jwks_file: {error}"
                ) from error
            issuer = issuer.model_copy(update={"jwks_file": jwks_path})
        issuers[issuer.iss] = issuer
    return issuers
