"""Fixtures for the CDS Hooks JWT tests: fresh ES384/RS384 key pairs, JWKS files, tokens."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_ai.security.cds_jwt import (
    CdsJwtVerifier,
    InMemoryReplayCache,
    JwksFetchError,
    KeyResolver,
    TrustedIssuer,
)

ISS = "https://ehr.example"
AUD = "https://cds.example.org/cds-services/imaging-check"
NOW = 1_700_000_000
JKU = "https://ehr.example/jwks.json"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in JWS compact serialisation."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK of a private key, with ``kid`` and ``use``."""
    if isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture(scope="session")
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def jwks(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {"keys": [public_jwk(ec_key, "ec-1"), public_jwk(rsa_key, "rsa-1")]}


@pytest.fixture
def jwks_file(tmp_path: Path, jwks: dict[str, Any]) -> Path:
    path = tmp_path / "keys" / "ehr.json"
    path.parent.mkdir()
    path.write_text(json.dumps(jwks))
    return path


@dataclass
class FakeFetcher:
    """A ``JwksFetcher`` serving documents from a dict and counting calls."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail: bool = False

    def fetch(self, url: str) -> dict[str, Any]:
        self.calls.append(url)
        if self.fail or url not in self.documents:
            raise JwksFetchError("not reachable")
        return self.documents[url]


@dataclass
class FakeClock:
    """A settable clock."""

    now: float = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fetcher() -> FakeFetcher:
    return FakeFetcher()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer(jwks_file: Path) -> TrustedIssuer:
    return TrustedIssuer(iss=ISS, jwks_file=jwks_file)


MakeVerifier = Callable[..., CdsJwtVerifier]


@pytest.fixture
def make_verifier(issuer: TrustedIssuer, fetcher: FakeFetcher, clock: FakeClock) -> MakeVerifier:
    """Build a verifier over ``issuers`` (default: the local-JWKS issuer) at ``NOW``."""

    def build(*issuers: TrustedIssuer, **options: Any) -> CdsJwtVerifier:
        chosen = issuers or (issuer,)
        return CdsJwtVerifier(
            {item.iss: item for item in chosen},
            KeyResolver(fetcher, clock=clock),
            InMemoryReplayCache(clock=clock),
            clock=clock,
            **options,
        )

    return build


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> CdsJwtVerifier:
    return make_verifier()


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims at ``NOW``; pass ``name=None`` to drop one."""
    values: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": str(uuid.uuid4()),
        "sub": "client-1",
        "tenant": "t1",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def sign(
    key: Any,
    alg: str = "ES384",
    kid: str | None = "ec-1",
    payload: dict[str, Any] | None = None,
    **headers: Any,
) -> str:
    """A signed compact JWT (``typ`` JWT), with ``kid`` unless None."""
    header: dict[str, Any] = {"typ": "JWT", **headers}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(payload or claims(), key, algorithm=alg, headers=header)


def bearer(token: str) -> str:
    """The Authorization header value for a token."""
    return f"Bearer {token}"
