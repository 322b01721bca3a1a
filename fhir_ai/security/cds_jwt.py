"""CDS Hooks 2.0.1 client JWT verification (spec §Security; cds-hooks best practices).

Usage (the HTTP layer turns ``AuthenticationFailed`` into an empty 401)::

    verifier = CdsJwtVerifier(
        load_issuers(path), KeyResolver(HttpJwksFetcher()), RedisReplayCache(client)
    )
    client = verifier.verify(request.headers.get("Authorization"), audience=endpoint_url)

Checks, in order: ``Bearer`` scheme; JWT header (``alg`` ES384 or RS384 only, ``typ``
JWT if present, ``kid`` required, no ``crit``/``b64``); ``iss`` allow-listed; key found
by ``kid`` (pre-shared JWKS or allow-listed ``jku``) and of the type ``alg`` names;
signature, verified with exactly that one algorithm; ``exp``/``nbf``/``iat`` with
leeway and a maximum lifetime; ``aud`` contains the exact endpoint URL; ``tenant``
allow-listed if configured; ``jti`` not seen before. Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from fhir_ai.security.jwks import (
    HttpJwksFetcher,
    JwksFetcher,
    JwksFetchError,
    KeyResolver,
    VerificationKey,
)
from fhir_ai.security.replay import InMemoryReplayCache, RedisReplayCache, ReplayCache
from fhir_ai.security.trust import AuthenticationFailed, TrustedIssuer, load_issuers

__all__ = [
    "AuthenticationFailed",
    "CdsJwtVerifier",
    "HttpJwksFetcher",
    "InMemoryReplayCache",
    "JwksFetchError",
    "JwksFetcher",
    "KeyResolver",
    "RedisReplayCache",
    "ReplayCache",
    "TrustedIssuer",
    "VerificationKey",
    "VerifiedClient",
    "load_issuers",
]

log = logging.getLogger("fhir_ai.security")


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


ALLOWED_ALGORITHMS = frozenset({"ES384", "RS384"})
MAX_TOKEN_CHARS = 16 * 1024
MAX_CLAIM_CHARS = 512
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_BEARER = re.compile(r"Bearer +(\S+)", re.IGNORECASE)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class VerifiedClient:
    """Who called: the verified claims the application may use."""

    iss: str
    sub: str | None
    tenant: str | None
    jti: str
    kid: str


@dataclass
class _Context:
    """What is known about the token so far, for the log line (never the token)."""

    iss: str | None = None
    kid: str | None = None
    jti: str | None = None


def _loggable(value: Any) -> str | None:
    """Short, printable form of an untrusted header or claim value."""
    if value is None:
        return None
    return _UNPRINTABLE.sub("?", str(value))[:200]


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthenticationFailed(f"bad {name}")
    return float(value)


def _short_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_CHARS:
        raise AuthenticationFailed(f"bad {name}")
    return value


class CdsJwtVerifier:
    """Verifies the ``Authorization`` header of a CDS Hooks call; thread-safe."""

    def __init__(
        self,
        issuers: Mapping[str, TrustedIssuer],
        key_resolver: KeyResolver,
        replay_cache: ReplayCache,
        *,
        leeway_s: int = 30,
        max_lifetime_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = dict(issuers)
        self._keys = key_resolver
        self._replay = replay_cache
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_lifetime_s
        self._clock = clock
        self._jws = PyJWS()

    def verify(self, authorization_header: str | None, audience: str) -> VerifiedClient:
        """Check the header for a call to ``audience`` (the exact public endpoint URL).

        Returns the verified client, or raises ``AuthenticationFailed`` (HTTP 401, a
        generic message; ``reason`` for the log). Logs one warning line per refusal with
        only the reason, ``iss``, ``kid`` and ``jti``.
        """
        if not audience:
            raise ValueError("audience must be the endpoint's public URL")
        context = _Context()
        try:
            client = self._verify(authorization_header, audience, context)
        except AuthenticationFailed as failure:
            log.warning(
                "CDS client JWT refused: %s",
                failure.reason,
                extra={
                    "reason": failure.reason,
                    "iss": _loggable(context.iss),
                    "kid": _loggable(context.kid),
                    "jti": _loggable(context.jti),
                },
            )
            raise
        log.debug(
            "CDS client JWT accepted",
            extra={"iss": client.iss, "kid": _loggable(client.kid), "jti": _loggable(client.jti)},
        )
        return client

    def _verify(self, header_value: str | None, audience: str, context: _Context) -> VerifiedClient:
        token = self._bearer_token(header_value)
        header = self._header(token)
        kid: str = header["kid"]
        context.kid = kid
        unverified = self._unverified_claims(token)
        context.iss = unverified.get("iss")
        context.jti = unverified.get("jti")
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthenticationFailed("unknown iss")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise AuthenticationFailed("bad jku")
        key = self._keys.resolve(issuer, kid, jku)
        if header["alg"] != key.algorithm:
            raise AuthenticationFailed("alg does not match key")
        claims = self._signed_claims(token, key)
        return self._check_claims(claims, issuer, kid, audience)

    @staticmethod
    def _bearer_token(header_value: str | None) -> str:
        if header_value is None or not header_value.strip():
            raise AuthenticationFailed("missing authorization")
        match = _BEARER.fullmatch(header_value.strip())
        if match is None:
            raise AuthenticationFailed("not a bearer token")
        token = match.group(1)
        if len(token) > MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
            raise AuthenticationFailed("malformed token")
        return token

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        return checked_header(token, ALLOWED_ALGORITHMS, frozenset({"JWT"}))

    @staticmethod
    def _unverified_claims(token: str) -> dict[str, Any]:
        """The payload before the signature is checked: only to pick the issuer."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise AuthenticationFailed("malformed token") from error
        if not isinstance(claims, dict):
            raise AuthenticationFailed("malformed token")
        return claims

    def _signed_claims(self, token: str, key: VerificationKey) -> dict[str, Any]:
        return signed_claims(self._jws, token, key, key.algorithm)

    def _check_claims(
        self, claims: Mapping[str, Any], issuer: TrustedIssuer, kid: str, audience: str
    ) -> VerifiedClient:
        now = self._clock()
        leeway = self._leeway_s
        exp = _number(claims, "exp")
        iat = _number(claims, "iat")
        nbf = _number(claims, "nbf")
        jti = _short_string(claims, "jti")
        if exp is None or iat is None or jti is None:
            raise AuthenticationFailed("missing claim")
        if claims.get("iss") != issuer.iss:
            raise AuthenticationFailed("unknown iss")
        if exp <= now - leeway:
            raise AuthenticationFailed("expired")
        if nbf is not None and nbf > now + leeway:
            raise AuthenticationFailed("not yet valid")
        if iat > now + leeway:
            raise AuthenticationFailed("iat in future")
        if exp - iat > self._max_lifetime_s or exp <= iat:
            raise AuthenticationFailed("bad lifetime")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or audience not in audiences:
            raise AuthenticationFailed("bad audience")
        tenant = _short_string(claims, "tenant")
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise AuthenticationFailed("tenant not allowed")
        sub = _short_string(claims, "sub")
        if self._replay.seen_before(issuer.iss, jti, math.ceil(exp) + leeway):
            raise AuthenticationFailed("replayed jti")
        return VerifiedClient(iss=issuer.iss, sub=sub, tenant=tenant, jti=jti, kid=kid)
