"""SMART Backend Services client against a real local token endpoint that checks assertions.

The endpoint (Flask on 127.0.0.1, a free port, in a thread) verifies every client
assertion with the client's public key, as an EHR would: signature and ``alg`` by
``kid``, ``typ``, ``iss`` = ``sub`` = client id, ``aud`` = its own URL, ``exp`` within
300 s of ``iat`` and of the (shared, controllable) clock, ``jti`` never seen before, and
the form's ``grant_type`` and ``client_assertion_type``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

from fhir_ai.errors import ConfigurationError, FhirAiError
from fhir_ai.security.backend_services import (
    CLIENT_ASSERTION_TYPE,
    BackendServicesClient,
    TokenRequestFailed,
    load_backend_client,
)

CLIENT_ID = "fhir-ai-backend"
SCOPE = "system/DiagnosticReport.c system/Patient.r"
JKU = "https://fhir-ai.example/.well-known/jwks.json"


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Clock:
    """A settable wall clock shared by the client and the endpoint."""

    now: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now


@dataclass
class TokenEndpoint:
    """State of the fake EHR token endpoint."""

    clock: Callable[[], float]
    public_keys: dict[str, tuple[str, Any]] = field(default_factory=dict)
    url: str = ""
    seen_jti: set[str] = field(default_factory=set)
    assertions: list[str] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    override: tuple[int, bytes, str] | None = None
    expires_in: Any = 300
    token_type: str = "bearer"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def calls(self) -> int:
        return len(self.assertions)

    def answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.override = (status, raw, content_type)

    def handle(self) -> Response:
        form = request.form
        assertion = form.get("client_assertion", "")
        with self.lock:
            self.assertions.append(assertion)
        if self.override is not None:
            status, raw, content_type = self.override
            return Response(raw, status=status, content_type=content_type)
        try:
            claims = self._verify(form.to_dict(), assertion)
        except (ValueError, jwt.PyJWTError) as error:
            with self.lock:
                self.failures.append(str(error))
            return Response(
                json.dumps({"error": "invalid_client", "error_description": str(error)}),
                status=400,
                content_type="application/json",
            )
        token = f"token-{len(self.tokens)}-{claims['jti'][:8]}"
        with self.lock:
            self.tokens.append(token)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": self.token_type,
            "scope": form["scope"],
        }
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Response(
            json.dumps(body),
            status=200,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    def _verify(self, form: dict[str, str], assertion: str) -> dict[str, Any]:
        if not request.mimetype == "application/x-www-form-urlencoded":
            raise ValueError(f"content type {request.mimetype}")
        if form.get("grant_type") != "client_credentials":
            raise ValueError("grant_type")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise ValueError("client_assertion_type")
        if not form.get("scope"):
            raise ValueError("scope")
        header = jwt.get_unverified_header(assertion)
        if header.get("typ") != "JWT":
            raise ValueError("typ")
        algorithm, key = self.public_keys[header["kid"]]
        if header.get("alg") != algorithm:
            raise ValueError("alg")
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,
            algorithms=[algorithm],
            audience=self.url,
            issuer=CLIENT_ID,
            options={
                "require": ["iss", "sub", "aud", "exp", "iat", "jti"],
                "verify_exp": False,  # checked below against the shared clock
                "verify_iat": False,
            },
        )
        now = self.clock()
        if claims["sub"] != CLIENT_ID:
            raise ValueError("sub")
        if not (now < claims["exp"] <= now + 300 and claims["exp"] - claims["iat"] <= 300):
            raise ValueError("exp")
        with self.lock:
            if claims["jti"] in self.seen_jti:
                raise ValueError("jti reused")
            self.seen_jti.add(claims["jti"])
        self.headers.append(header)
        return claims


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def endpoint(
    clock: Clock, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> Iterator[TokenEndpoint]:
    state = TokenEndpoint(
        clock=clock,
        public_keys={
            "rsa-1": ("RS384", rsa_key.public_key()),
            "ec-1": ("ES384", ec_key.public_key()),
        },
    )
    app = Flask("token-endpoint")
    app.add_url_rule("/oauth2/token", "token", state.handle, methods=["POST"])

    @app.post("/redirect")
    def redirect() -> Response:
        state.assertions.append(request.form.get("client_assertion", ""))
        return Response(status=307, headers={"Location": state.url})

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    state.url = f"http://127.0.0.1:{server.server_port}/oauth2/token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
    assert not thread.is_alive()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as value:
        yield value


def make_client(
    endpoint: TokenEndpoint,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    algorithm: Any = "ES384",
    *,
    session: requests.Session | None = None,
    **options: Any,
) -> BackendServicesClient:
    values: dict[str, Any] = {
        "token_endpoint": endpoint.url,
        "client_id": CLIENT_ID,
        "private_key_pem": pem(key),
        "kid": "ec-1" if algorithm == "ES384" else "rsa-1",
        "algorithm": algorithm,
        "scope": SCOPE,
        "session": session,
        "clock": endpoint.clock,
        "timeout_s": 5,
    }
    values.update(options)
    return BackendServicesClient(**values)


# --- getting a token -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_gets_a_token_with_each_algorithm(
    endpoint: TokenEndpoint,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    algorithm: str,
) -> None:
    key = rsa_key if algorithm == "RS384" else ec_key
    client = make_client(endpoint, key, algorithm, session=session)

    token = client.access_token()

    assert endpoint.failures == []
    assert endpoint.tokens == [token]
    assert client.authorization_header() == f"Bearer {token}"
    assert client.granted_scope == SCOPE
    header = endpoint.headers[0]
    assert header["alg"] == algorithm
    assert header["typ"] == "JWT"
    assert "jku" not in header


def test_assertion_claims_and_jku_header(
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    clock: Clock,
) -> None:
    client = make_client(endpoint, ec_key, session=session, jku=JKU)
    client.access_token()

    assert endpoint.headers[0] == {"alg": "ES384", "kid": "ec-1", "typ": "JWT", "jku": JKU}
    claims = jwt.decode(endpoint.assertions[0], options={"verify_signature": False})
    now = int(clock())
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == endpoint.url
    assert claims["iat"] == now
    assert now < claims["exp"] <= now + 300


def test_token_type_is_case_insensitive(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey, session: requests.Session
) -> None:
    endpoint.token_type = "Bearer"
    assert make_client(endpoint, ec_key, session=session).access_token() == endpoint.tokens[0]


# --- caching ---------------------------------------------------------------------------


def test_token_is_cached_then_refreshed_near_expiry(
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    clock: Clock,
) -> None:
    client = make_client(endpoint, ec_key, session=session)
    start = clock.now

    first = client.access_token()
    assert client.access_token() == first
    assert endpoint.calls == 1

    clock.now = start + 239  # 300 s token, refreshed 60 s before it ends
    assert client.access_token() == first
    assert endpoint.calls == 1

    clock.now = start + 240
    second = client.access_token()
    assert second != first
    assert endpoint.calls == 2
    assert client.access_token() == second
    assert endpoint.calls == 2
    assert endpoint.failures == []


def test_short_lived_token_keeps_half_its_life(
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    clock: Clock,
) -> None:
    endpoint.expires_in = 60
    client = make_client(endpoint, ec_key, session=session)
    start = clock.now
    first = client.access_token()
    clock.now = start + 29
    assert client.access_token() == first
    clock.now = start + 30
    assert client.access_token() != first
    assert endpoint.calls == 2


def test_token_without_expires_in_is_not_cached(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey, session: requests.Session
) -> None:
    endpoint.expires_in = None
    client = make_client(endpoint, ec_key, session=session)
    assert client.access_token() != client.access_token()
    assert endpoint.calls == 2


def test_invalidate_forces_a_new_token(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey, session: requests.Session
) -> None:
    client = make_client(endpoint, ec_key, session=session)
    first = client.access_token()
    client.invalidate()
    assert client.access_token() != first
    assert endpoint.calls == 2


def test_every_assertion_has_a_new_jti(
    endpoint: TokenEndpoint, rsa_key: rsa.RSAPrivateKey, session: requests.Session
) -> None:
    client = make_client(endpoint, rsa_key, "RS384", session=session)
    for _ in range(5):
        client.invalidate()
        client.access_token()
    jtis = [
        jwt.decode(item, options={"verify_signature": False})["jti"] for item in endpoint.assertions
    ]
    assert len(jtis) == 5
    assert len(set(jtis)) == 5
    assert endpoint.failures == []


def test_concurrent_callers_share_one_request(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    client = make_client(endpoint, ec_key)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(client.access_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8
    assert len(set(results)) == 1
    assert endpoint.calls == 1


# --- failures --------------------------------------------------------------------------


def test_invalid_client_is_reported_without_the_assertion(
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint.answer(400, {"error": "invalid_client", "error_description": "unknown kid"})
    client = make_client(endpoint, ec_key, session=session)

    with caplog.at_level(logging.DEBUG), pytest.raises(TokenRequestFailed) as caught:
        client.access_token()

    error = caught.value
    assert isinstance(error, FhirAiError)
    assert error.http_status == 502
    assert error.issue_code == "transient"
    assert error.status_code == 400
    assert error.oauth_error == "invalid_client"
    assert "invalid_client" in str(error)
    assert "400" in str(error)
    assertion = endpoint.assertions[0]
    assert assertion
    for text in (str(error), repr(error), repr(error.args), caplog.text):
        assert assertion not in text
        assert assertion.split(".")[2] not in text  # not even the signature
    assert repr(client).count("PRIVATE") == 0


def test_tokens_are_never_logged(
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(endpoint, ec_key, session=session)
    with caplog.at_level(logging.DEBUG):
        token = client.access_token()
    records = " ".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert token not in records
    assert endpoint.assertions[0] not in records


def test_a_rejected_assertion_is_an_invalid_client(
    endpoint: TokenEndpoint, rsa_key: rsa.RSAPrivateKey, session: requests.Session
) -> None:
    # Signed with a key the endpoint does not have under this kid: a real verification failure.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = make_client(endpoint, other, "RS384", session=session)
    with pytest.raises(TokenRequestFailed, match="invalid_client"):
        client.access_token()
    assert endpoint.failures == ["Signature verification failed"]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (500, b"<html>oops</html>", "text/html", "HTTP 500"),
        (401, {"error": "bad error code with spaces"}, "application/json", "HTTP 401"),
        (200, b"not json", "text/plain", "without a JSON object"),
        (200, ["a", "list"], "application/json", "without a JSON object"),
        (200, {"token_type": "bearer", "expires_in": 300}, "application/json", "access_token"),
        (200, {"access_token": "", "token_type": "bearer"}, "application/json", "access_token"),
        (200, {"access_token": "t", "token_type": "mac"}, "application/json", "not bearer"),
        (200, {"access_token": "t"}, "application/json", "not bearer"),
        (
            200,
            {"access_token": "a\r\nX-Evil: 1", "token_type": "bearer"},
            "application/json",
            "invalid characters",
        ),
        (
            200,
            {"access_token": "t", "token_type": "bearer", "expires_in": "300"},
            "application/json",
            "expires_in",
        ),
    ],
)
def test_bad_token_responses(
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    session: requests.Session,
    status: int,
    body: Any,
    content_type: str,
    expected: str,
) -> None:
    endpoint.answer(status, body, content_type)
    client = make_client(endpoint, ec_key, session=session)
    with pytest.raises(TokenRequestFailed, match=expected) as caught:
        client.access_token()
    assert caught.value.oauth_error is None
    assert "X-Evil" not in str(caught.value)


def test_failure_is_not_cached(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey, session: requests.Session
) -> None:
    client = make_client(endpoint, ec_key, session=session)
    endpoint.answer(503, {"error": "temporarily_unavailable"})
    with pytest.raises(TokenRequestFailed, match="temporarily_unavailable"):
        client.access_token()
    endpoint.override = None
    assert client.access_token() == endpoint.tokens[0]


def test_redirects_are_not_followed(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey, session: requests.Session
) -> None:
    url = endpoint.url.replace("/oauth2/token", "/redirect")
    client = make_client(endpoint, ec_key, session=session, token_endpoint=url)
    with pytest.raises(TokenRequestFailed, match="HTTP 307"):
        client.access_token()
    assert endpoint.calls == 1  # only the redirecting endpoint saw the assertion


def test_unreachable_endpoint(ec_key: ec.EllipticCurvePrivateKey, clock: Clock) -> None:
    server = make_server("127.0.0.1", 0, Flask("closed"))
    port = server.server_port
    server.server_close()  # nothing listens on this port any more
    client = BackendServicesClient(
        f"http://127.0.0.1:{port}/token", CLIENT_ID, pem(ec_key), "ec-1", "ES384", SCOPE,
        clock=clock, timeout_s=2,
    )  # fmt: skip
    with pytest.raises(TokenRequestFailed, match="ConnectionError"):
        client.access_token()


# --- construction ----------------------------------------------------------------------


def test_bad_key_and_algorithm_pairs_are_refused(
    endpoint: TokenEndpoint, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p256 = ec.generate_private_key(ec.SECP256R1())
    cases: list[tuple[Any, str, str]] = [
        (ec_key, "RS384", "needs an RSA private key"),
        (rsa_key, "ES384", "needs an EC private key"),
        (small_rsa, "RS384", "at least 2048 bits"),
        (p256, "ES384", "P-384"),
        (rsa_key, "RS256", "must be one of RS384, ES384"),
        (ec_key, "none", "must be one of"),
        (rsa_key, "HS256", "must be one of"),
    ]
    for key, algorithm, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            make_client(endpoint, key, algorithm)


def test_unusable_keys_and_settings_are_refused(
    endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    encrypted = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    public_only = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"private_key_pem": encrypted}, "encrypted"),
        ({"private_key_pem": public_only}, "not a readable PEM private key"),
        ({"private_key_pem": b"garbage"}, "not a readable PEM private key"),
        ({"token_endpoint": "http://ehr.example/token"}, "https"),
        ({"token_endpoint": "ftp://127.0.0.1/token"}, "https"),
        ({"jku": "http://ehr.example/jwks.json"}, "jku must be an https"),
        ({"client_id": ""}, "client_id"),
        ({"kid": " "}, "kid"),
        ({"scope": ""}, "scope"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"assertion_lifetime_s": 301}, "assertion_lifetime_s"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            make_client(endpoint, ec_key, **options)


def test_repr_shows_no_key(endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey) -> None:
    client = make_client(endpoint, ec_key)
    assert CLIENT_ID in repr(client)
    assert "PRIVATE KEY" not in repr(client)


# --- configuration file ----------------------------------------------------------------


def write_config(
    folder: Path,
    endpoint: TokenEndpoint,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    **overrides: Any,
) -> Path:
    keys = folder / "keys"
    keys.mkdir(exist_ok=True)
    key_file = keys / "backend.pem"
    key_file.write_bytes(pem(key))
    key_file.chmod(0o600)
    config: dict[str, Any] = {
        "token_endpoint": endpoint.url,
        "client_id": CLIENT_ID,
        "private_key_file": "keys/backend.pem",
        "kid": "rsa-1" if isinstance(key, rsa.RSAPrivateKey) else "ec-1",
        "algorithm": "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384",
        "scope": SCOPE,
    }
    config.update(overrides)
    path = folder / "backend.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return path


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_load_backend_client_gets_a_token(
    tmp_path: Path,
    endpoint: TokenEndpoint,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    algorithm: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The loaded client uses the real clock; so does the endpoint's check here.
    endpoint.clock = time.time
    key = rsa_key if algorithm == "RS384" else ec_key
    path = write_config(tmp_path, endpoint, key, jku=JKU)

    client = load_backend_client(path)
    with caplog.at_level(logging.WARNING):
        token = client.access_token()

    assert token == endpoint.tokens[0]
    assert endpoint.headers[0]["alg"] == algorithm
    assert endpoint.headers[0]["jku"] == JKU
    assert caplog.records == []


def test_load_backend_client_warns_on_readable_key_file(
    tmp_path: Path,
    endpoint: TokenEndpoint,
    ec_key: ec.EllipticCurvePrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_config(tmp_path, endpoint, ec_key)
    (tmp_path / "keys" / "backend.pem").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="fhir_ai.security"):
        load_backend_client(path)
    assert "readable by group or others" in caplog.text


def test_load_backend_client_absolute_key_path(
    tmp_path: Path, endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    absolute = tmp_path / "elsewhere.pem"
    absolute.write_bytes(pem(ec_key))
    absolute.chmod(0o600)
    config = tmp_path / "conf"
    config.mkdir()
    path = write_config(config, endpoint, ec_key, private_key_file=str(absolute))
    assert load_backend_client(path).client_id == CLIENT_ID


def test_load_backend_client_errors(
    tmp_path: Path, endpoint: TokenEndpoint, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigurationError, match=r"cannot read backend services config .*missing"):
        load_backend_client(missing)

    not_json = tmp_path / "not.json"
    not_json.write_text("{token_endpoint: ")
    with pytest.raises(ConfigurationError, match="is not JSON"):
        load_backend_client(not_json)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"scope": None}, r"invalid backend services config .*scope: Field required"),
        ({"kid": None, "client_id": None}, r"client_id: Field required; kid: Field required"),
        ({"algorithm": "RS256"}, r"algorithm: Input should be 'RS384' or 'ES384'"),
        ({"private_key": "-----BEGIN"}, r"private_key: Extra inputs are not permitted"),
        ({"private_key_file": "keys/nope.pem"}, r"cannot read private_key_file .*nope\.pem"),
        ({"algorithm": "RS384"}, r"backend\.json \(.*backend\.pem\): RS384 needs an RSA"),
        ({"token_endpoint": "http://ehr.example/t"}, r"token_endpoint must be an https"),
    ]
    for overrides, message in cases:
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        path = write_config(folder, endpoint, ec_key, **overrides)
        with pytest.raises(ConfigurationError, match=message) as caught:
            load_backend_client(path)
        assert "-----BEGIN" not in str(caught.value)

    array = tmp_path / "array.json"
    array.write_text("[]")
    with pytest.raises(ConfigurationError, match="invalid backend services config"):
        load_backend_client(array)
