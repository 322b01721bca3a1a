"""JWT pieces shared by the CDS client JWT and SMART access token verifiers.

Each function raises :class:`AuthenticationFailed` with a short ``reason`` (for the log,
never the token) when its part of the token does not pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from fhir_ai.security.jwks import VerificationKey
from fhir_ai.security.trust import AuthenticationFailed

MAX_TOKEN_CHARS = 16 * 1024
MAX_CLAIM_CHARS = 512
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_BEARER = re.compile(r"Bearer +(\S+)", re.IGNORECASE)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def bearer_token(header_value: str | None) -> str:
    """The compact JWS of an ``Authorization: Bearer <token>`` header."""
    if header_value is None or not header_value.strip():
        raise AuthenticationFailed("missing authorization")
    match = _BEARER.fullmatch(header_value.strip())
    if match is None:
        raise AuthenticationFailed("not a bearer token")
    token = match.group(1)
    if len(token) > MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
        raise AuthenticationFailed("malformed token")
    return token


def checked_header(token: str, algorithms: frozenset[str], types: frozenset[str]) -> dict[str, Any]:
    """The JOSE header of ``token`` if its ``alg``, ``typ`` (upper-cased) and ``kid`` pass."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise AuthenticationFailed("malformed token") from error
    if header.get("alg") not in algorithms:
        raise AuthenticationFailed("disallowed alg")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() not in types):
        raise AuthenticationFailed("bad typ")
    if "crit" in header or "b64" in header:
        raise AuthenticationFailed("unsupported header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_CLAIM_CHARS:
        raise AuthenticationFailed("missing kid")
    return header


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload before the signature is checked: only to pick the issuer."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise AuthenticationFailed("malformed token") from error
    if not isinstance(claims, dict):
        raise AuthenticationFailed("malformed token")
    return claims


def signed_claims(jws: PyJWS, token: str, key: VerificationKey, algorithm: str) -> dict[str, Any]:
    """The claims of ``token`` once its signature verifies with ``key`` under ``algorithm``."""
    try:
        payload = jws.decode(token, key=key.key, algorithms=[algorithm])
        claims = json.loads(payload)
    except jwt.InvalidSignatureError as error:
        raise AuthenticationFailed("bad signature") from error
    except (jwt.PyJWTError, ValueError) as error:
        raise AuthenticationFailed("malformed token") from error
    if not isinstance(claims, dict):
        raise AuthenticationFailed("malformed token")
    return claims


def number_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """A finite numeric claim (``exp``, ``iat``, ``nbf``), or None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthenticationFailed(f"bad {name}")
    return float(value)


def string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    """A short, non-empty string claim, or None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_CHARS:
        raise AuthenticationFailed(f"bad {name}")
    return value


def loggable(value: Any) -> str | None:
    """Short, printable form of an untrusted header or claim value."""
    if value is None:
        return None
    return _UNPRINTABLE.sub("?", str(value))[:200]
