"""CdsJwtVerifier: what CDS Hooks 2.0.1 clients may send, and the attacks it must refuse."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_ai.errors import FhirAiError
from fhir_ai.security.cds_jwt import (
    AuthenticationFailed,
    CdsJwtVerifier,
    TrustedIssuer,
    VerifiedClient,
)

from .conftest import (
    AUD,
    ISS,
    JKU,
    NOW,
    FakeClock,
    FakeFetcher,
    MakeVerifier,
    b64url,
    bearer,
    claims,
    public_jwk,
    sign,
)


def refused(verifier: CdsJwtVerifier, header: str | None, reason: str, aud: str = AUD) -> None:
    """Assert the header is refused for ``reason`` with the generic 401 message."""
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.verify(header, aud)
    assert caught.value.reason == reason
    assert str(caught.value) == "authentication failed"
    assert caught.value.http_status == 401


def test_valid_es384_passes(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    payload = claims(jti="jti-es")
    client = verifier.verify(bearer(sign(ec_key, payload=payload)), AUD)
    assert client == VerifiedClient(iss=ISS, sub="client-1", tenant="t1", jti="jti-es", kid="ec-1")


def test_valid_rs384_passes(verifier: CdsJwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    client = verifier.verify(bearer(sign(rsa_key, "RS384", "rsa-1")), AUD)
    assert client.kid == "rsa-1"
    assert client.iss == ISS


def test_optional_claims_and_typ_may_be_absent(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    payload = claims(sub=None, tenant=None)
    token = jwt.encode(payload, ec_key, algorithm="ES384", headers={"kid": "ec-1", "typ": None})
    assert "typ" not in jwt.get_unverified_header(token)
    client = verifier.verify(bearer(token), AUD)
    assert (client.sub, client.tenant) == (None, None)


def test_unknown_claims_are_accepted(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier.verify(bearer(sign(ec_key, payload=claims(nbf=NOW - 300, extra={"a": 1}))), AUD)


def test_bearer_scheme_is_case_insensitive(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier.verify("bearer " + sign(ec_key), AUD)


def test_error_is_a_fhir_ai_error_with_a_login_issue() -> None:
    error = AuthenticationFailed("expired")
    assert isinstance(error, FhirAiError)
    assert error.issue_code == "login"
    assert "expired" not in str(error)


def test_expired(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = sign(ec_key, payload=claims(iat=NOW - 600, exp=NOW - 31))
    refused(verifier, bearer(token), "expired")


def test_expired_within_leeway_passes(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier.verify(bearer(sign(ec_key, payload=claims(iat=NOW - 600, exp=NOW - 29))), AUD)


def test_not_yet_valid(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    refused(verifier, bearer(sign(ec_key, payload=claims(nbf=NOW + 120))), "not yet valid")


def test_iat_in_the_future(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = sign(ec_key, payload=claims(iat=NOW + 120, exp=NOW + 400))
    refused(verifier, bearer(token), "iat in future")


def test_lifetime_longer_than_maximum(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign(ec_key, payload=claims(iat=NOW, exp=NOW + 3601))
    refused(verifier, bearer(token), "bad lifetime")


@pytest.mark.parametrize("missing", ["exp", "iat", "jti"])
def test_required_claims(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey, missing: str
) -> None:
    refused(verifier, bearer(sign(ec_key, payload=claims(**{missing: None}))), "missing claim")


@pytest.mark.parametrize(("name", "value"), [("exp", "soon"), ("iat", True), ("jti", 42)])
def test_claims_of_the_wrong_type(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey, name: str, value: Any
) -> None:
    refused(verifier, bearer(sign(ec_key, payload=claims(**{name: value}))), f"bad {name}")


@pytest.mark.parametrize(
    "aud",
    [
        "https://cds.example.org/cds-services/other",
        AUD + "/",
        "https://cds.example.org",
        [AUD + "x", "https://elsewhere.example"],
        None,
        42,
    ],
)
def test_wrong_audience(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey, aud: Any
) -> None:
    refused(verifier, bearer(sign(ec_key, payload=claims(aud=aud))), "bad audience")


def test_audience_list_containing_ours_passes(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign(ec_key, payload=claims(aud=["https://other.example/x", AUD]))
    verifier.verify(bearer(token), AUD)


def test_unknown_iss(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = sign(ec_key, payload=claims(iss="https://evil.example"))
    refused(verifier, bearer(token), "unknown iss")


def test_unknown_kid(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    refused(verifier, bearer(sign(ec_key, kid="nope")), "unknown kid")


def test_missing_kid(verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    refused(verifier, bearer(sign(ec_key, kid=None)), "missing kid")


def test_signed_by_another_key_with_a_known_kid(
    verifier: CdsJwtVerifier, other_ec_key: ec.EllipticCurvePrivateKey
) -> None:
    refused(verifier, bearer(sign(other_ec_key)), "bad signature")


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    """Hand-made compact JWS with the given header, payload and signature part."""
    parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode())]
    return ".".join([*parts, signature])


def test_alg_none_is_refused(verifier: CdsJwtVerifier) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": "ec-1"}
    refused(verifier, bearer(unsigned(header, claims())), "malformed token")
    refused(verifier, bearer(unsigned(header, claims(), "AAAA")), "disallowed alg")
    header["alg"] = "None"
    refused(verifier, bearer(unsigned(header, claims(), "AAAA")), "disallowed alg")


def test_hs256_with_the_public_key_as_secret_is_refused(
    verifier: CdsJwtVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The key-confusion attack: HMAC keyed with the server's known public key."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384)):
        signing_input = unsigned({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims())[:-1]
        mac = hmac.new(pem, signing_input.encode(), digest).digest()
        refused(verifier, bearer(signing_input + "." + b64url(mac)), "disallowed alg")


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS384"])
def test_other_rsa_algorithms_are_refused(
    verifier: CdsJwtVerifier, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    refused(verifier, bearer(sign(rsa_key, alg, "rsa-1")), "disallowed alg")


def test_es256_is_refused(verifier: CdsJwtVerifier) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    refused(verifier, bearer(sign(p256, "ES256", "ec-1")), "disallowed alg")


def test_alg_must_match_the_key_type(
    verifier: CdsJwtVerifier, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    refused(verifier, bearer(sign(rsa_key, "RS384", "ec-1")), "alg does not match key")
    refused(verifier, bearer(sign(ec_key, "ES384", "rsa-1")), "alg does not match key")


def test_tampered_payload_is_refused(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    header, _, signature = sign(ec_key).split(".")
    forged = b64url(json.dumps(claims(sub="admin")).encode())
    refused(verifier, bearer(f"{header}.{forged}.{signature}"), "bad signature")


def test_bad_typ_and_crit_headers(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    refused(verifier, bearer(sign(ec_key, typ="at+jwt")), "bad typ")
    # PyJWT itself rejects unknown critical extensions; either way it is refused.
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.verify(bearer(sign(ec_key, crit=["exp"], exp=1)), AUD)
    assert caught.value.reason in {"malformed token", "unsupported header"}


def test_replayed_jti_is_refused(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign(ec_key)
    verifier.verify(bearer(token), AUD)
    refused(verifier, bearer(token), "replayed jti")
    # The same jti in a freshly signed token is a replay too.
    payload = jwt.decode(token, options={"verify_signature": False})
    refused(verifier, bearer(sign(ec_key, payload={**payload, "iat": NOW + 1})), "replayed jti")


def test_refused_token_does_not_burn_its_jti(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    payload = claims(jti="once")
    refused(verifier, bearer(sign(ec_key, payload={**payload, "aud": "x"})), "bad audience")
    verifier.verify(bearer(sign(ec_key, payload=payload)), AUD)


def test_tenant_allow_list(
    make_verifier: MakeVerifier, issuer: TrustedIssuer, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = make_verifier(issuer.model_copy(update={"tenants": frozenset({"t1"})}))
    verifier.verify(bearer(sign(ec_key, payload=claims(tenant="t1"))), AUD)
    refused(verifier, bearer(sign(ec_key, payload=claims(tenant="t2"))), "tenant not allowed")
    refused(verifier, bearer(sign(ec_key, payload=claims(tenant=None))), "tenant not allowed")


def test_jku_not_on_the_allow_list_is_never_fetched(
    make_verifier: MakeVerifier,
    fetcher: FakeFetcher,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    evil = "https://evil.example/jwks.json"
    fetcher.documents[evil] = {"keys": [public_jwk(ec_key, "k9")]}
    verifier = make_verifier(TrustedIssuer(iss=ISS, jku=(JKU,)))
    refused(verifier, bearer(sign(ec_key, kid="k9", jku=evil)), "jku not allowed")
    assert fetcher.calls == []


def test_header_jku_is_ignored_when_the_kid_is_pre_shared(
    verifier: CdsJwtVerifier, fetcher: FakeFetcher, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier.verify(bearer(sign(ec_key, jku="https://evil.example/jwks.json")), AUD)
    assert fetcher.calls == []


def test_allow_listed_jku_is_fetched_once_and_cached(
    make_verifier: MakeVerifier, fetcher: FakeFetcher, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    fetcher.documents[JKU] = {"keys": [public_jwk(ec_key, "k1")]}
    verifier = make_verifier(TrustedIssuer(iss=ISS, jku=JKU))
    verifier.verify(bearer(sign(ec_key, kid="k1", jku=JKU)), AUD)
    verifier.verify(bearer(sign(ec_key, kid="k1", jku=JKU)), AUD)
    verifier.verify(bearer(sign(ec_key, kid="k1")), AUD)  # no header jku: the allow-list
    assert fetcher.calls == [JKU]


def test_unknown_kid_triggers_one_rate_limited_refresh(
    make_verifier: MakeVerifier,
    fetcher: FakeFetcher,
    clock: FakeClock,
    ec_key: ec.EllipticCurvePrivateKey,
    other_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    fetcher.documents[JKU] = {"keys": [public_jwk(ec_key, "k1")]}
    verifier = make_verifier(TrustedIssuer(iss=ISS, jku=[JKU]))
    verifier.verify(bearer(sign(ec_key, kid="k1", jku=JKU)), AUD)
    assert len(fetcher.calls) == 1

    clock.now += 61  # the client rotates its keys
    fetcher.documents[JKU] = {"keys": [public_jwk(ec_key, "k1"), public_jwk(other_ec_key, "k2")]}
    verifier.verify(bearer(sign(other_ec_key, kid="k2", jku=JKU)), AUD)
    assert len(fetcher.calls) == 2

    # Unknown kids within the next minute do not hammer the client's JWKS endpoint.
    for _ in range(3):
        refused(verifier, bearer(sign(ec_key, kid="k3", jku=JKU)), "unknown kid")
    assert len(fetcher.calls) == 2
    clock.now += 61
    refused(verifier, bearer(sign(ec_key, kid="k3", jku=JKU)), "unknown kid")
    assert len(fetcher.calls) == 3


def test_logs_only_reason_iss_kid_jti(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    token = sign(ec_key, payload=claims(jti="j-1", aud="https://wrong.example"))
    with caplog.at_level(logging.DEBUG, logger="fhir_ai.security"):
        refused(verifier, bearer(token), "bad audience")
    (record,) = [r for r in caplog.records if r.name == "fhir_ai.security"]
    assert record.levelno == logging.WARNING
    assert (record.reason, record.iss, record.kid, record.jti) == (  # type: ignore[attr-defined]
        "bad audience",
        ISS,
        "ec-1",
        "j-1",
    )
    for part in token.split("."):
        assert part not in caplog.text
    assert "client-1" not in caplog.text  # other claims stay out too


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic x",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "garbage",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer !!!.???.***",
        "Bearer eyJ.eyJ.sig",
        "Bearer x.y.z extra",
        "Bearer " + "a" * 20_000 + ".b.c",
    ],
)
def test_malformed_headers(verifier: CdsJwtVerifier, header: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.verify(header, AUD)
    assert caught.value.reason in {"missing authorization", "not a bearer token", "malformed token"}


def test_header_that_is_not_a_json_object(verifier: CdsJwtVerifier) -> None:
    token = ".".join([b64url(b"[1]"), b64url(json.dumps(claims()).encode()), "AAAA"])
    refused(verifier, bearer(token), "malformed token")


def test_payload_that_is_not_a_json_object(
    verifier: CdsJwtVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = jwt.api_jws.encode(b"[1, 2]", ec_key, algorithm="ES384", headers={"kid": "ec-1"})
    refused(verifier, bearer(token), "malformed token")


def test_empty_audience_is_a_programming_error(verifier: CdsJwtVerifier) -> None:
    with pytest.raises(ValueError, match="audience"):
        verifier.verify("Bearer x.y.z", "")
