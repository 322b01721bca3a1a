"""SMART on FHIR test plumbing: a trusted issuer's keys on disk and signed access tokens."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fhir_ai.settings import Settings
from tests.conftest import make_settings

ISS = "https://auth.example"
ROOT = "https://fhir.example"
AUD = f"{ROOT}/fhir"
TOKEN_URL = "https://auth.example/oauth2/token"

#: ``token("system/*.rs", patient=..., alg=..., **claims)``: an Authorization header value.
Token = Callable[..., str]


def auth(header: str) -> dict[str, str]:
    """Request headers carrying the Authorization ``header`` value (from a :data:`Token`)."""
    return {"Authorization": header}


def smart_settings(
    tmp: Path, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey, **overrides: Any
) -> Settings:
    """Settings requiring SMART tokens from :data:`ISS`, whose JWKS holds both keys."""
    keys = [
        {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec-1", "use": "sig"},
        {**RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "kid": "rsa-1"},
    ]
    (tmp / "auth-jwks.json").write_text(json.dumps({"keys": keys}))
    issuers = tmp / "fhir-issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": ISS, "jwks_file": "auth-jwks.json"}]}))
    values: dict[str, Any] = {
        "fhir_auth": "required",
        "fhir_issuers": issuers,
        "public_base_url": ROOT,
        "smart_token_endpoint": TOKEN_URL,
    }
    values.update(overrides)
    return make_settings(tmp, **values)


def token_factory(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> Token:
    """Signs access tokens for :data:`AUD`; ``None`` claim values are left out."""

    def make(scopes: str | list[str] | None, alg: str = "ES384", **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISS,
            "aud": AUD,
            "sub": "client-1",
            "client_id": "client-1",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        if isinstance(scopes, list):
            payload["scp"] = scopes
        elif scopes is not None:
            payload["scope"] = scopes
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        key = ec_key if alg.startswith("ES") else rsa_key
        kid = "ec-1" if alg.startswith("ES") else "rsa-1"
        signed = jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})
        return f"Bearer {signed}"

    return make
