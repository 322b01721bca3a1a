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

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jwt.api_jws import PyJWS

from fhir_ai.security.jwks import (
    HttpJwksFetcher,
    JwksFetcher,
    JwksFetchError,
    KeyResolver,
    VerificationKey,
)
from fhir_ai.security.jwt_claims import (
    bearer_token,
    checked_header,
    loggable,
    number_claim,
    signed_claims,
    string_claim,
    unverified_claims,
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


ALLOWED_ALGORITHMS = frozenset({"ES384", "RS384"})


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

    def close(self) -> None:
        """Release the replay cache's connections."""
        self._replay.close()

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
                    "iss": loggable(context.iss),
                    "kid": loggable(context.kid),
                    "jti": loggable(context.jti),
                },
            )
            raise
        log.debug(
            "CDS client JWT accepted",
            extra={"iss": client.iss, "kid": loggable(client.kid), "jti": loggable(client.jti)},
        )
        return client

    def _verify(self, header_value: str | None, audience: str, context: _Context) -> VerifiedClient:
        token = bearer_token(header_value)
        header = self._header(token)
        kid: str = header["kid"]
        context.kid = kid
        unverified = unverified_claims(token)
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
    def _header(token: str) -> dict[str, Any]:
        return checked_header(token, ALLOWED_ALGORITHMS, frozenset({"JWT"}))

    def _signed_claims(self, token: str, key: VerificationKey) -> dict[str, Any]:
        return signed_claims(self._jws, token, key, key.algorithm)

    def _check_claims(
        self, claims: Mapping[str, Any], issuer: TrustedIssuer, kid: str, audience: str
    ) -> VerifiedClient:
        now = self._clock()
        leeway = self._leeway_s
        exp = number_claim(claims, "exp")
        iat = number_claim(claims, "iat")
        nbf = number_claim(claims, "nbf")
        jti = string_claim(claims, "jti")
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
        tenant = string_claim(claims, "tenant")
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise AuthenticationFailed("tenant not allowed")
        sub = string_claim(claims, "sub")
        if self._replay.seen_before(issuer.iss, jti, math.ceil(exp) + leeway):
            raise AuthenticationFailed("replayed jti")
        return VerifiedClient(iss=issuer.iss, sub=sub, tenant=tenant, jti=jti, kid=kid)
