"""Signing keys of trusted issuers: pre-shared JWKS files and allow-listed ``jku`` URLs.

``KeyResolver`` finds the public key named by a JWT's ``kid``. It never fetches a URL
that is not on the issuer's ``jku`` allow-list, caches each fetched JWKS for a while,
and refetches at most once a minute per URL when a ``kid`` is unknown (key rotation).
Only EC P-384 keys (ES384), EC P-256 keys (ES256) and RSA keys of at least 2048 bits
(RS384) are kept; each verifier decides which of these algorithms it accepts (CDS Hooks:
ES384 and RS384 only; SMART access tokens also ES256 and RS256).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from fhir_ai.security.trust import (
    AuthenticationFailed,
    TrustedIssuer,
    is_allowed_jwks_url,
    read_jwks_file,
)

log = logging.getLogger("fhir_ai.security")

Algorithm = Literal["ES256", "ES384", "RS384"]
_CURVES: dict[str, Algorithm] = {"P-256": "ES256", "P-384": "ES384"}
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


class JwksFetchError(Exception):
    """A JWKS could not be fetched or is not a JWKS."""


class JwksFetcher(Protocol):
    """Port: fetch the JWKS document at a URL (raise ``JwksFetchError`` on any failure)."""

    def fetch(self, url: str) -> dict[str, Any]:
        """Return the JWKS at ``url`` as a JSON object with a ``keys`` list."""
        ...


class HttpJwksFetcher:
    """Fetches a JWKS over HTTPS with ``requests``: short timeout, size cap, no redirects.

    Plain ``http`` is accepted only for loopback hosts (127.0.0.1, localhost), for tests.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 3.0,
        max_bytes: int = 256 * 1024,
        session: requests.Session | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._session = session or requests.Session()

    def fetch(self, url: str) -> dict[str, Any]:
        """GET ``url`` and parse it as a JWKS."""
        if not is_allowed_jwks_url(url):
            raise JwksFetchError("JWKS URL must be https (http only on loopback)")
        try:
            with self._session.get(
                url,
                timeout=self._timeout_s,
                stream=True,
                allow_redirects=False,
                headers={"Accept": "application/json, application/jwk-set+json"},
            ) as response:
                if response.status_code != 200:
                    raise JwksFetchError(f"JWKS URL answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_content(chunk_size=16384):
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise JwksFetchError(f"JWKS larger than {self._max_bytes} bytes")
        except requests.RequestException as error:
            raise JwksFetchError(f"JWKS fetch failed: {type(error).__name__}") from error
        try:
            document = json.loads(bytes(body))
        except ValueError as error:
            raise JwksFetchError("JWKS is not JSON") from error
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise JwksFetchError("JWKS is not an object with a 'keys' list")
        return document


@dataclass(frozen=True)
class VerificationKey:
    """A usable public key and the one algorithm it may verify."""

    kid: str
    algorithm: Algorithm
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class _KeySet:
    keys: Mapping[str, VerificationKey]
    unsupported: frozenset[str]


def parse_jwks(document: Mapping[str, Any]) -> _KeySet:
    """Keep the usable signing keys of a JWKS, by ``kid``.

    Keys without a ``kid``, not meant for signatures, of another type or size, or whose
    ``alg`` disagrees are left out; their kids (and repeated kids) are reported as
    unsupported so the verifier can say so.
    """
    keys: dict[str, VerificationKey] = {}
    unsupported: set[str] = set()
    raw_keys = document.get("keys")
    for jwk in raw_keys if isinstance(raw_keys, list) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        kid: str = jwk["kid"]
        parsed = _parse_jwk(jwk)
        if parsed is None or kid in keys or kid in unsupported:
            keys.pop(kid, None)
            unsupported.add(kid)
        else:
            keys[kid] = parsed
    return _KeySet(keys=keys, unsupported=frozenset(unsupported))


def _parse_jwk(jwk: Mapping[str, Any]) -> VerificationKey | None:
    if jwk.get("use", "sig") != "sig":
        return None
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}
    try:
        if jwk.get("kty") == "EC" and jwk.get("crv") in _CURVES:
            ec_key = ECAlgorithm.from_jwk(public)
            if not isinstance(ec_key, ec.EllipticCurvePublicKey):
                return None
            algorithm: Algorithm = _CURVES[jwk["crv"]]
            key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey = ec_key
        elif jwk.get("kty") == "RSA":
            rsa_key = RSAAlgorithm.from_jwk(public)
            if not isinstance(rsa_key, rsa.RSAPublicKey) or rsa_key.key_size < MIN_RSA_BITS:
                return None
            algorithm = "RS384"
            key = rsa_key
        else:
            return None
    except (InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    if jwk.get("alg", algorithm) != algorithm:
        return None
    return VerificationKey(kid=jwk["kid"], algorithm=algorithm, key=key)


@dataclass
class _CachedUrl:
    keyset: _KeySet | None = None
    fetched_at: float = 0.0
    last_attempt: float | None = None


@dataclass
class _CachedFile:
    stamp: tuple[int, int]
    keyset: _KeySet


@dataclass
class _Caches:
    urls: dict[str, _CachedUrl] = field(default_factory=dict)
    files: dict[Path, _CachedFile] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class KeyResolver:
    """Finds an issuer's public key by ``kid``; thread-safe, one per process.

    Order: the issuer's pre-shared JWKS file (re-read when the file changes; a header
    ``jku`` is not consulted when the kid is found there); then the JWT header's
    ``jku`` only if it is on the issuer's allow-list (else "jku not allowed", nothing
    fetched), or, without a header ``jku``, the allow-listed URLs in order. A fetched
    JWKS is reused for ``ttl_s``; an unknown ``kid`` refetches it, at most once per
    ``min_refresh_interval_s`` per URL (failed fetches count too; a stale copy is kept).
    """

    def __init__(
        self,
        fetcher: JwksFetcher,
        *,
        ttl_s: float = 3600.0,
        min_refresh_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher = fetcher
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_interval_s
        self._clock = clock
        self._caches = _Caches()

    def resolve(self, issuer: TrustedIssuer, kid: str, jku: str | None) -> VerificationKey:
        """The key for ``kid``, or ``AuthenticationFailed`` (unknown kid, jku not allowed...)."""
        unsupported = False
        if issuer.jwks_file is not None:
            local = self._file_keyset(issuer.jwks_file)
            if kid in local.keys:
                return local.keys[kid]
            unsupported = kid in local.unsupported
        if jku is not None and jku not in issuer.jku:
            raise AuthenticationFailed("jku not allowed")
        unavailable = False
        for url in (jku,) if jku is not None else issuer.jku:
            keyset = self._url_keyset(url, kid)
            if keyset is None:
                unavailable = True
                continue
            if kid in keyset.keys:
                return keyset.keys[kid]
            unsupported = unsupported or kid in keyset.unsupported
        if unsupported:
            raise AuthenticationFailed("unsupported key")
        raise AuthenticationFailed("jwks unavailable" if unavailable else "unknown kid")

    def _file_keyset(self, path: Path) -> _KeySet:
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            with self._caches.lock:
                cached = self._caches.files.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached.keyset
            keyset = parse_jwks(read_jwks_file(path))
        except (OSError, ValueError) as error:
            log.error("cannot read JWKS file %s: %s", path, error)
            raise AuthenticationFailed("jwks unavailable") from error
        with self._caches.lock:
            self._caches.files[path] = _CachedFile(stamp=stamp, keyset=keyset)
        return keyset

    def _url_keyset(self, url: str, kid: str) -> _KeySet | None:
        now = self._clock()
        with self._caches.lock:
            entry = self._caches.urls.setdefault(url, _CachedUrl())
            fresh = entry.keyset is not None and now - entry.fetched_at < self._ttl_s
            if fresh and entry.keyset is not None and kid in entry.keyset.keys:
                return entry.keyset
            last = entry.last_attempt
            if last is not None and now - last < self._min_refresh_s:
                return entry.keyset
            entry.last_attempt = now
        try:
            document = self._fetcher.fetch(url)
        except JwksFetchError as error:
            log.warning("JWKS fetch failed", extra={"jku": url, "error": str(error)})
            with self._caches.lock:
                return entry.keyset
        keyset = parse_jwks(document)
        with self._caches.lock:
            entry.keyset = keyset
            entry.fetched_at = now
        return keyset
