"""SMART Backend Services client: OAuth 2.0 ``client_credentials`` with ``private_key_jwt``.

fhir-ai uses it to call an EHR's FHIR server as itself (SMART App Launch 2.x "Backend
Services"), for example to write finished DiagnosticReports back. Each token request
carries a fresh client assertion, a short-lived JWT signed with our private key::

    header  {"alg": "RS384" | "ES384", "kid": ..., "typ": "JWT", "jku"?: ...}
    claims  {"iss": client_id, "sub": client_id, "aud": token_endpoint,
             "exp": now + <= 300 s, "iat": now, "jti": <random, never reused>}

The access token is cached until shortly before ``expires_in`` ends. Neither the
assertion nor any access token is ever logged or put into an error message.

The configuration file read by :func:`load_backend_client` is JSON::

    {"token_endpoint": "https://ehr.example/oauth2/token",
     "client_id": "fhir-ai",
     "private_key_file": "keys/fhir-ai-es384.pem",
     "kid": "fhir-ai-2026-01",
     "algorithm": "ES384",
     "scope": "system/DiagnosticReport.c system/Patient.r",
     "jku": "https://fhir-ai.example/.well-known/jwks.json"}

``private_key_file`` (an unencrypted PEM private key) is resolved against the folder of
the configuration file when relative; ``jku`` is optional.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import jwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import BaseModel, ConfigDict, ValidationError

from fhir_ai.errors import ConfigurationError, FhirAiError
from fhir_ai.security.trust import is_allowed_jwks_url

log = logging.getLogger("fhir_ai.security")

BackendAlgorithm = Literal["RS384", "ES384"]
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 300
MIN_RSA_BITS = 2048
DEFAULT_REFRESH_MARGIN_S = 60.0
MAX_RESPONSE_BYTES = 64 * 1024

# RFC 6749 error codes are %x20-21 / %x23-5B / %x5D-7E; we only echo the usual shape.
_OAUTH_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# A token that can be put into an Authorization header as is (no spaces, no CR/LF).
_HEADER_SAFE_TOKEN = re.compile(r"[\x21-\x7e]+")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TokenRequestFailed(FhirAiError):
    """The EHR's token endpoint did not give us an access token.

    The message names the endpoint, the HTTP status and the OAuth ``error`` code when
    the endpoint sent one; never the client assertion or a token. ``status_code`` and
    ``oauth_error`` carry the same facts for callers (``None`` when unknown).
    """

    http_status: ClassVar[int] = 502
    issue_code: ClassVar[str] = "transient"

    def __init__(
        self, message: str, *, status_code: int | None = None, oauth_error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.oauth_error = oauth_error


@dataclass(frozen=True)
class _CachedToken:
    value: str = field(repr=False)
    refresh_at: float
    scope: str | None


def _check_key(private_key: object, algorithm: str) -> PrivateKey:
    """The key if it may sign ``algorithm``; ``ConfigurationError`` otherwise."""
    if algorithm == "RS384":
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ConfigurationError("RS384 needs an RSA private key")
        if private_key.key_size < MIN_RSA_BITS:
            raise ConfigurationError(
                f"RS384 needs an RSA key of at least {MIN_RSA_BITS} bits "
                f"(got {private_key.key_size})"
            )
        return private_key
    if algorithm == "ES384":
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError("ES384 needs an EC private key on curve P-384")
        if not isinstance(private_key.curve, ec.SECP384R1):
            raise ConfigurationError(
                f"ES384 needs an EC key on curve P-384 (got {private_key.curve.name})"
            )
        return private_key
    allowed = ", ".join(get_args(BackendAlgorithm))
    raise ConfigurationError(f"algorithm must be one of {allowed} (got {algorithm!r})")


def _load_private_key(private_key_pem: bytes) -> object:
    try:
        return serialization.load_pem_private_key(private_key_pem, password=None)
    except TypeError:  # encrypted key and no password
        raise ConfigurationError("the private key is encrypted; give an unencrypted PEM") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        # The library's message says nothing about the key material itself.
        raise ConfigurationError(
            f"the private key is not a readable PEM private key ({type(error).__name__})"
        ) from None


def _require_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")
    return value


class BackendServicesClient:
    """Gets and caches access tokens from an EHR's token endpoint; thread-safe.

    ``access_token()`` returns the cached token until ``refresh_margin_s`` (at most half
    the token's lifetime) before ``expires_in`` ends, then asks for a new one. One lock
    guards the cache and the request, so concurrent callers share a single request.
    A token response without ``expires_in`` is used once and not cached.

    The token endpoint and ``jku`` must be ``https`` (``http`` only on loopback, for
    tests); redirects are never followed, so the assertion goes nowhere else.
    """

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        private_key_pem: bytes,
        kid: str,
        algorithm: BackendAlgorithm,
        scope: str,
        jku: str | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10,
        *,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        assertion_lifetime_s: int = MAX_ASSERTION_LIFETIME_S,
    ) -> None:
        self._token_endpoint = _require_text("token_endpoint", token_endpoint)
        if not is_allowed_jwks_url(token_endpoint):
            raise ConfigurationError("token_endpoint must be an https URL (http only on loopback)")
        self._client_id = _require_text("client_id", client_id)
        self._kid = _require_text("kid", kid)
        self._scope = _require_text("scope", scope)
        if jku is not None and not is_allowed_jwks_url(jku):
            raise ConfigurationError("jku must be an https URL (http only on loopback)")
        self._jku = jku
        if not isinstance(private_key_pem, bytes | bytearray):
            raise ConfigurationError("private_key_pem must be bytes")
        self._algorithm: BackendAlgorithm = algorithm
        self._key = _check_key(_load_private_key(bytes(private_key_pem)), algorithm)
        if not 0 < assertion_lifetime_s <= MAX_ASSERTION_LIFETIME_S:
            raise ConfigurationError(
                f"assertion_lifetime_s must be within 1..{MAX_ASSERTION_LIFETIME_S}"
            )
        if timeout_s <= 0 or refresh_margin_s < 0:
            raise ConfigurationError("timeout_s must be > 0 and refresh_margin_s >= 0")
        self._assertion_lifetime_s = assertion_lifetime_s
        self._refresh_margin_s = refresh_margin_s
        self._session = session if session is not None else requests.Session()
        self._clock = clock
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cached: _CachedToken | None = None

    def __repr__(self) -> str:
        return (
            f"BackendServicesClient(token_endpoint={self._token_endpoint!r}, "
            f"client_id={self._client_id!r}, kid={self._kid!r}, algorithm={self._algorithm!r})"
        )

    @property
    def token_endpoint(self) -> str:
        """Where tokens are requested (also the assertion's ``aud``)."""
        return self._token_endpoint

    @property
    def client_id(self) -> str:
        """Our client id at the EHR (the assertion's ``iss`` and ``sub``)."""
        return self._client_id

    @property
    def granted_scope(self) -> str | None:
        """The ``scope`` the endpoint granted with the cached token, if it said."""
        with self._lock:
            return self._cached.scope if self._cached is not None else None

    def access_token(self) -> str:
        """A valid access token: the cached one, or a new one from the token endpoint.

        Raises ``TokenRequestFailed`` when the endpoint cannot be reached, answers other
        than 200, or its answer is not a bearer token response.
        """
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            self._cached = None
            token = self._request_token()
            if token.refresh_at > self._clock():
                self._cached = token
            return token.value

    def authorization_header(self) -> str:
        """The ``Authorization`` header value for calls to the FHIR server."""
        return f"Bearer {self.access_token()}"

    def invalidate(self) -> None:
        """Forget the cached token (for example after the FHIR server answered 401)."""
        with self._lock:
            self._cached = None

    def client_assertion(self) -> str:
        """A new signed client assertion (new ``jti``); mostly for tests and diagnostics."""
        now = int(self._clock())
        claims = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": self._token_endpoint,
            "iat": now,
            "exp": now + self._assertion_lifetime_s,
            "jti": secrets.token_urlsafe(32),
        }
        headers: dict[str, Any] = {"kid": self._kid, "typ": "JWT"}
        if self._jku is not None:
            headers["jku"] = self._jku
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)

    def _request_token(self) -> _CachedToken:
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        started = self._clock()
        endpoint = self._token_endpoint
        try:
            with self._session.post(
                endpoint,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout_s,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
                body = bytearray()
                for chunk in response.iter_content(chunk_size=16384):
                    body.extend(chunk)
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise TokenRequestFailed(
                            f"token endpoint {endpoint} answered more than "
                            f"{MAX_RESPONSE_BYTES} bytes",
                            status_code=status,
                        )
        except requests.RequestException as error:
            # The exception text names at most the URL; the assertion is in the body only.
            raise TokenRequestFailed(
                f"token request to {endpoint} failed: {type(error).__name__}"
            ) from None
        document = _json_object(bytes(body))
        if status != 200:
            oauth_error = _oauth_error(document)
            detail = f" (error={oauth_error})" if oauth_error else ""
            log.warning(
                "token request failed",
                extra={"token_endpoint": endpoint, "status": status, "oauth_error": oauth_error},
            )
            raise TokenRequestFailed(
                f"token endpoint {endpoint} answered HTTP {status}{detail}",
                status_code=status,
                oauth_error=oauth_error,
            )
        if document is None:
            raise TokenRequestFailed(
                f"token endpoint {endpoint} answered 200 without a JSON object", status_code=200
            )
        return self._parse_token_response(document, started)

    def _parse_token_response(self, document: Mapping[str, Any], started: float) -> _CachedToken:
        endpoint = self._token_endpoint
        value = document.get("access_token")
        if not isinstance(value, str) or not value:
            raise TokenRequestFailed(
                f"token endpoint {endpoint} answered without an access_token", status_code=200
            )
        if not _HEADER_SAFE_TOKEN.fullmatch(value):
            raise TokenRequestFailed(
                f"token endpoint {endpoint} answered an access_token with invalid characters",
                status_code=200,
            )
        token_type = document.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            shown = token_type if isinstance(token_type, str) and len(token_type) < 32 else "?"
            raise TokenRequestFailed(
                f"token endpoint {endpoint} answered token_type {shown!r}, not bearer",
                status_code=200,
            )
        expires_in = document.get("expires_in")
        if expires_in is None:
            lifetime = 0.0
        elif isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise TokenRequestFailed(
                f"token endpoint {endpoint} answered a non-numeric expires_in", status_code=200
            )
        else:
            lifetime = max(float(expires_in), 0.0)
        # The clock at the request's start: the token's life began no earlier than that.
        margin = min(self._refresh_margin_s, lifetime / 2)
        scope = document.get("scope")
        log.debug(
            "got access token",
            extra={"token_endpoint": endpoint, "expires_in": lifetime, "scope": scope},
        )
        return _CachedToken(
            value=value,
            refresh_at=started + lifetime - margin,
            scope=scope if isinstance(scope, str) else None,
        )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _oauth_error(document: Mapping[str, Any] | None) -> str | None:
    if document is None:
        return None
    code = document.get("error")
    if isinstance(code, str) and _OAUTH_ERROR_CODE.fullmatch(code):
        return code
    return None


class _BackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token_endpoint: str
    client_id: str
    private_key_file: Path
    kid: str
    algorithm: BackendAlgorithm
    scope: str
    jku: str | None = None


def _validation_summary(error: ValidationError) -> str:
    # Field names and messages only: pydantic's default text repeats the input values.
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(file)"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def load_backend_client(
    config_path: Path, *, session: requests.Session | None = None
) -> BackendServicesClient:
    """Build a ``BackendServicesClient`` from the JSON configuration file at ``config_path``.

    Raises ``ConfigurationError`` naming the file and the problem: unreadable or not
    JSON, missing or unknown fields, an unreadable key file, or a key that does not fit
    the algorithm. Warns when the key file is readable by group or others.
    """
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(
            f"cannot read backend services config {config_path}: {error.strerror or error}"
        ) from error
    except ValueError as error:
        raise ConfigurationError(
            f"backend services config {config_path} is not JSON: {error}"
        ) from error
    try:
        config = _BackendConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigurationError(
            f"invalid backend services config {config_path}: {_validation_summary(error)}"
        ) from None
    key_path = config.private_key_file
    if not key_path.is_absolute():
        key_path = (config_path.parent / key_path).resolve()
    try:
        pem = key_path.read_bytes()
        mode = key_path.stat().st_mode
    except OSError as error:
        raise ConfigurationError(
            f"backend services config {config_path}: cannot read private_key_file "
            f"{key_path}: {error.strerror or error}"
        ) from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("private key file is readable by group or others", extra={"path": key_path})
    try:
        return BackendServicesClient(
            token_endpoint=config.token_endpoint,
            client_id=config.client_id,
            private_key_pem=pem,
            kid=config.kid,
            algorithm=config.algorithm,
            scope=config.scope,
            jku=config.jku,
            session=session,
        )
    except ConfigurationError as error:
        raise ConfigurationError(
            f"backend services config {config_path} ({key_path}): {error.message}"
        ) from None
