"""KeyResolver key types and caching, and the HTTP JWKS fetcher against a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_ai.security.cds_jwt import (
    AuthenticationFailed,
    HttpJwksFetcher,
    JwksFetchError,
    KeyResolver,
    TrustedIssuer,
)
from fhir_ai.security.jwks import parse_jwks

from .conftest import ISS, JKU, FakeClock, FakeFetcher, public_jwk


def test_parse_keeps_only_p256_p384_and_rsa_2048(
    ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p521 = ec.generate_private_key(ec.SECP521R1())
    document = {
        "keys": [
            public_jwk(ec_key, "ec"),
            public_jwk(rsa_key, "rsa"),
            public_jwk(small_rsa, "small"),
            public_jwk(p256, "p256"),
            public_jwk(p521, "p521"),
            {**public_jwk(p256, "p256-as-es384"), "alg": "ES384"},
            {**public_jwk(rsa_key, "rs256"), "alg": "RS256"},
            {**public_jwk(ec_key, "enc"), "use": "enc"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AA", "y": "AA"},
            public_jwk(ec_key, "twice"),
            public_jwk(rsa_key, "twice"),
            {"kty": "EC"},
            "not a key",
        ]
    }
    keyset = parse_jwks(document)
    assert {kid: key.algorithm for kid, key in keyset.keys.items()} == {
        "ec": "ES384",
        "rsa": "RS384",
        "p256": "ES256",
    }
    assert keyset.unsupported == {
        "small", "p521", "p256-as-es384", "rs256", "enc", "hmac", "broken", "twice"
    }  # fmt: skip


def test_private_jwk_yields_only_the_public_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    from jwt.algorithms import ECAlgorithm

    private = {**ECAlgorithm.to_jwk(ec_key, as_dict=True), "kid": "k"}
    assert "d" in private
    key = parse_jwks({"keys": [private]}).keys["k"]
    assert isinstance(key.key, ec.EllipticCurvePublicKey)


def test_unsupported_key_reason(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(small, "small")]}))
    resolver = KeyResolver(FakeFetcher())
    with pytest.raises(AuthenticationFailed) as caught:
        resolver.resolve(TrustedIssuer(iss=ISS, jwks_file=path), "small", None)
    assert caught.value.reason == "unsupported key"


def test_local_file_is_reread_when_it_changes(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey, other_ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(ec_key, "a")]}))
    issuer = TrustedIssuer(iss=ISS, jwks_file=path)
    resolver = KeyResolver(FakeFetcher())
    assert resolver.resolve(issuer, "a", None).kid == "a"
    path.write_text(json.dumps({"keys": [public_jwk(other_ec_key, "bb")]}))
    assert resolver.resolve(issuer, "bb", None).kid == "bb"
    path.unlink()
    with pytest.raises(AuthenticationFailed) as caught:
        resolver.resolve(issuer, "bb", None)
    assert caught.value.reason == "jwks unavailable"


def test_cached_jwks_expires_after_ttl(ec_key: ec.EllipticCurvePrivateKey) -> None:
    fetcher = FakeFetcher(documents={JKU: {"keys": [public_jwk(ec_key, "k")]}})
    clock = FakeClock(now=0.0)
    resolver = KeyResolver(fetcher, ttl_s=3600, clock=clock)
    issuer = TrustedIssuer(iss=ISS, jku=JKU)
    resolver.resolve(issuer, "k", JKU)
    clock.now = 3599
    resolver.resolve(issuer, "k", JKU)
    assert len(fetcher.calls) == 1
    clock.now = 3601
    resolver.resolve(issuer, "k", JKU)
    assert len(fetcher.calls) == 2


def test_stale_keys_are_kept_when_a_refresh_fails(ec_key: ec.EllipticCurvePrivateKey) -> None:
    fetcher = FakeFetcher(documents={JKU: {"keys": [public_jwk(ec_key, "k")]}})
    clock = FakeClock(now=0.0)
    resolver = KeyResolver(fetcher, clock=clock)
    issuer = TrustedIssuer(iss=ISS, jku=JKU)
    resolver.resolve(issuer, "k", JKU)
    fetcher.fail = True
    clock.now = 4000
    assert resolver.resolve(issuer, "k", JKU).kid == "k"
    assert len(fetcher.calls) == 2


def test_unreachable_jwks(ec_key: ec.EllipticCurvePrivateKey) -> None:
    fetcher = FakeFetcher(fail=True)
    resolver = KeyResolver(fetcher, clock=FakeClock(now=0.0))
    issuer = TrustedIssuer(iss=ISS, jku=JKU)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed) as caught:
            resolver.resolve(issuer, "k", None)
        assert caught.value.reason == "jwks unavailable"
    assert len(fetcher.calls) == 1  # failures are rate-limited too


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes, dict[str, str]]]] = {}

    def do_GET(self) -> None:
        status, body, headers = self.routes.get(self.path, (404, b"", {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def jwks_server(ec_key: ec.EllipticCurvePrivateKey) -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    base = f"http://127.0.0.1:{server.server_port}"
    _Handler.routes = {
        "/jwks.json": (200, json.dumps({"keys": [public_jwk(ec_key, "k")]}).encode(), {}),
        "/big.json": (200, b'{"keys": [' + b" " * 300_000 + b"]}", {}),
        "/not-json": (200, b"<html>", {}),
        "/no-keys": (200, b'{"k": []}', {}),
        "/redirect": (302, b"", {"Location": "/jwks.json"}),
    }
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_fetcher_reads_a_jwks(jwks_server: str) -> None:
    document = HttpJwksFetcher().fetch(f"{jwks_server}/jwks.json")
    assert document["keys"][0]["kid"] == "k"


@pytest.mark.parametrize("path", ["/missing", "/big.json", "/not-json", "/no-keys", "/redirect"])
def test_http_fetcher_refuses(jwks_server: str, path: str) -> None:
    with pytest.raises(JwksFetchError):
        HttpJwksFetcher(max_bytes=64 * 1024).fetch(jwks_server + path)


@pytest.mark.parametrize(
    "url", ["http://ehr.example/jwks.json", "ftp://ehr.example/k", "file:///etc/passwd"]
)
def test_http_fetcher_requires_https_off_loopback(url: str) -> None:
    with pytest.raises(JwksFetchError, match="https"):
        HttpJwksFetcher().fetch(url)


def test_http_fetcher_unreachable() -> None:
    with pytest.raises(JwksFetchError, match="fetch failed"):
        HttpJwksFetcher(timeout_s=0.5).fetch("http://127.0.0.1:9/jwks.json")
