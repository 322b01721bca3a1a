"""SMART on FHIR access tokens for the ``/fhir`` API: verification and discovery.

This server is a *resource server*: an external authorization server issues JWT access
tokens; we check them against the JWKS of the issuers in ``FHIR_AI_FHIR_ISSUERS`` (the
same file format as the CDS issuers, see :mod:`fhir_ai.security.trust`) and enforce
their scopes (:mod:`fhir_ai.security.scopes`).

Checks, in order: ``Bearer`` scheme; JWT header (``alg`` RS256, RS384, ES256 or ES384
only, never ``none`` or HMAC; ``typ`` JWT or at+jwt if present; ``kid`` required; no
``crit``/``b64``); ``iss`` allow-listed; key found by ``kid`` (pre-shared JWKS file or
allow-listed ``jku``, through the shared :class:`KeyResolver`) and of the family ``alg``
names; signature with exactly that algorithm; ``exp`` required, ``nbf``/``iat`` when
present, all with leeway; ``aud`` contains the FHIR base URL; ``tenant`` allow-listed if
the issuer restricts tenants. Scopes come from ``scope`` (space-separated) or ``scp``
(a list), the launch context patient from ``patient``. ``fhirUser`` (the user's own
resource, SMART's identity claim, when the authorization server puts it in the access
token) is kept for audit when it is a reference to a Patient, Practitioner,
PractitionerRole, RelatedPerson or Person, relative or absolute; any other value is
ignored (it grants nothing, so it need not refuse the token). There is no ``jti``
replay check: access tokens are reusable until they expire. Tokens are never logged.

Keys: the shared :class:`KeyResolver` returns RSA keys (>= 2048 bits, JWK ``alg`` absent
or RS384), EC P-256 and EC P-384 keys. An RSA key verifies RS256 or RS384; a P-256 key
verifies ES256 and a P-384 key ES384, nothing else.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.api_jws import PyJWS

from fhir_ai.errors import Forbidden
from fhir_ai.fhir.references import ID_PATTERN
from fhir_ai.security import jwt_claims as claims_of
from fhir_ai.security.jwks import HttpJwksFetcher, KeyResolver, VerificationKey
from fhir_ai.security.scopes import PATIENT_SHARED_TYPES, ScopeSet
from fhir_ai.security.trust import AuthenticationFailed, TrustedIssuer, load_issuers
from fhir_ai.settings import Settings

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "SmartAccess",
    "SmartTokenVerifier",
    "build_smart_verifier",
    "capability_security",
    "smart_configuration",
]

log = logging.getLogger("fhir_ai.security")

ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "ES256", "ES384"})
_TYPES = frozenset({"JWT", "AT+JWT", "APPLICATION/AT+JWT"})
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
_FHIR_USER = re.compile(
    r"(?:https?://[^\s?#]{1,900}/)?(?:Patient|Practitioner|PractitionerRole|RelatedPerson|Person)"
    rf"/{ID_PATTERN}"
)
SCOPES_SUPPORTED = (
    "system/*.rs",
    "system/*.cruds",
    "system/*.read",
    "system/*.write",
    "system/*.*",
    "user/*.rs",
    "user/*.cruds",
    "user/*.read",
    "user/*.write",
    "patient/*.rs",
    "patient/*.cruds",
    "patient/*.read",
    "patient/*.write",
)


class AccessDenied(Forbidden):
    """The token is valid but its scopes do not allow this interaction (HTTP 403)."""


@dataclass(frozen=True)
class SmartAccess:
    """A verified access token: who, and what its scopes allow."""

    iss: str
    sub: str | None
    client_id: str | None
    scopes: ScopeSet
    fhir_user: str | None = None  # the user's resource reference, for audit only

    @property
    def label(self) -> str:
        """Who called, for logs and audit records (never the token)."""
        return " ".join(part for part in (self.iss, self.client_id or self.sub) if part)


class SmartTokenVerifier:
    """Verifies the bearer access token of a ``/fhir`` call; thread-safe."""

    def __init__(
        self,
        issuers: Mapping[str, TrustedIssuer],
        key_resolver: KeyResolver,
        *,
        leeway_s: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = dict(issuers)
        self._keys = key_resolver
        self._leeway_s = leeway_s
        self._clock = clock
        self._jws = PyJWS()

    def verify(self, authorization_header: str | None, audience: str) -> SmartAccess:
        """Check the header for a call whose FHIR base URL is ``audience``.

        Raises ``AuthenticationFailed`` (401, generic message; ``reason`` for the log).
        """
        if not audience:
            raise ValueError("audience must be the FHIR base URL")
        context: dict[str, Any] = {}
        try:
            access = self._verify(authorization_header, audience.rstrip("/"), context)
        except AuthenticationFailed as failure:
            log.warning(
                "SMART access token refused: %s",
                failure.reason,
                extra={
                    "reason": failure.reason,
                    "iss": claims_of.loggable(context.get("iss")),
                    "kid": claims_of.loggable(context.get("kid")),
                },
            )
            raise
        log.debug("SMART access token accepted", extra={"client": claims_of.loggable(access.label)})
        return access

    def _verify(
        self, header_value: str | None, audience: str, context: dict[str, Any]
    ) -> SmartAccess:
        token = claims_of.bearer_token(header_value)
        header = self._header(token)
        kid: str = header["kid"]
        context["kid"] = kid
        unverified = claims_of.unverified_claims(token)
        iss = unverified.get("iss")
        context["iss"] = iss
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthenticationFailed("unknown iss")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise AuthenticationFailed("bad jku")
        key = self._keys.resolve(issuer, kid, jku)
        algorithm: str = header["alg"]
        if not _key_fits(key, algorithm):
            raise AuthenticationFailed("alg does not match key")
        claims = self._signed_claims(token, key, algorithm)
        return self._check_claims(claims, issuer, audience)

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        return claims_of.checked_header(token, ALLOWED_ALGORITHMS, _TYPES)

    def _signed_claims(self, token: str, key: VerificationKey, algorithm: str) -> dict[str, Any]:
        return claims_of.signed_claims(self._jws, token, key, algorithm)

    def _check_claims(
        self, claims: Mapping[str, Any], issuer: TrustedIssuer, audience: str
    ) -> SmartAccess:
        now = self._clock()
        leeway = self._leeway_s
        exp = claims_of.number_claim(claims, "exp")
        iat = claims_of.number_claim(claims, "iat")
        nbf = claims_of.number_claim(claims, "nbf")
        if exp is None:
            raise AuthenticationFailed("missing claim")
        if claims.get("iss") != issuer.iss:
            raise AuthenticationFailed("unknown iss")
        if exp <= now - leeway:
            raise AuthenticationFailed("expired")
        if nbf is not None and nbf > now + leeway:
            raise AuthenticationFailed("not yet valid")
        if iat is not None and iat > now + leeway:
            raise AuthenticationFailed("iat in future")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not any(
            isinstance(item, str) and item.rstrip("/") == audience for item in audiences
        ):
            raise AuthenticationFailed("bad audience")
        tenant = claims_of.string_claim(claims, "tenant")
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise AuthenticationFailed("tenant not allowed")
        scope = claims.get("scope")
        if scope is None:
            scope = claims.get("scp")
        if scope is not None and not _is_scope_claim(scope):
            raise AuthenticationFailed("bad scope")
        return SmartAccess(
            iss=issuer.iss,
            sub=claims_of.string_claim(claims, "sub"),
            client_id=claims_of.string_claim(claims, "client_id"),
            scopes=ScopeSet.parse(scope, claims_of.string_claim(claims, "patient")),
            fhir_user=_fhir_user(claims.get("fhirUser")),
        )


def _fhir_user(value: Any) -> str | None:
    """The ``fhirUser`` claim when it is a reference to a user's resource, else None."""
    if isinstance(value, str) and _FHIR_USER.fullmatch(value):
        return value
    return None


def _is_scope_claim(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _key_fits(key: VerificationKey, algorithm: str) -> bool:
    """An RSA key verifies RS256/RS384; an EC key only the one algorithm of its curve."""
    if isinstance(key.key, rsa.RSAPublicKey):
        return algorithm in ("RS256", "RS384")
    if isinstance(key.key, ec.EllipticCurvePublicKey):
        return algorithm == key.algorithm
    return False


def build_smart_verifier(settings: Settings) -> SmartTokenVerifier | None:
    """The verifier the settings ask for; None (with a warning) when FHIR auth is off."""
    if settings.fhir_auth == "off":
        log.warning("FHIR API authorization is OFF (FHIR_AI_FHIR_AUTH=off): /fhir is open")
        return None
    issuers = load_issuers(settings.fhir_issuers) if settings.fhir_issuers else {}
    if not issuers:
        log.warning("no trusted SMART issuers (FHIR_AI_FHIR_ISSUERS): /fhir calls get 401")
    return SmartTokenVerifier(
        issuers, KeyResolver(HttpJwksFetcher()), leeway_s=settings.jwt_leeway_s
    )


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """The ``/.well-known/smart-configuration`` document (SMART App Launch 2.x).

    ``permission-patient`` is claimed because ``patient/`` scopes are enforced on the
    token patient's compartment (:mod:`fhir_ai.security.scopes`). The launch
    capabilities (``launch-ehr``, ``launch-standalone``, ``context-ehr-patient``,
    ``context-standalone-patient``) are not: they describe the external authorization
    server's launch flows, which this resource server neither runs nor knows; it only
    honours the ``patient`` context a token carries.
    """
    document: dict[str, Any] = {}
    grants = ["client_credentials"]
    if settings.smart_authorization_endpoint:
        document["authorization_endpoint"] = settings.smart_authorization_endpoint
        grants.append("authorization_code")
    if settings.smart_token_endpoint:
        document["token_endpoint"] = settings.smart_token_endpoint
    document.update(
        {
            "grant_types_supported": grants,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "capabilities": [
                "client-confidential-asymmetric",
                "permission-v1",
                "permission-v2",
                "permission-patient",
                "permission-user",
            ],
        }
    )
    return document


def capability_security(settings: Settings) -> dict[str, Any] | None:
    """``CapabilityStatement.rest.security`` for SMART; None when FHIR auth is off."""
    if settings.fhir_auth == "off":
        return None
    security: dict[str, Any] = {
        "cors": bool(settings.cors_origins),
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth2 bearer tokens using the SMART on FHIR profile",
            }
        ],
        "description": (
            "SMART on FHIR access tokens (JWT) with system/, user/ and patient/ scopes; "
            "patient/ scopes reach only the token patient's compartment (FHIR R4 "
            "CompartmentDefinition/patient) and, for reading, "
            f"{', '.join(sorted(PATIENT_SHARED_TYPES))}; "
            "see /.well-known/smart-configuration"
        ),
    }
    uris = [
        {"url": name, "valueUri": value}
        for name, value in (
            ("token", settings.smart_token_endpoint),
            ("authorize", settings.smart_authorization_endpoint),
        )
        if value
    ]
    if uris:
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return security
