"""SmartTokenVerifier claims and algorithms; smart-configuration and capability security."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_ai.security.cds_jwt import CdsJwtVerifier, InMemoryReplayCache
from fhir_ai.security.jwks import KeyResolver
from fhir_ai.security.smart import (
    SmartTokenVerifier,
    capability_security,
    smart_configuration,
)
from fhir_ai.security.trust import AuthenticationFailed, TrustedIssuer
from fhir_ai.settings import Settings
from tests.unit.security.conftest import (
    ISS,
    NOW,
    FakeClock,
    FakeFetcher,
    bearer,
    public_jwk,
    sign,
)

FHIR = "https://fhir.example/fhir"


@pytest.fixture
def smart(issuer: TrustedIssuer, fetcher: FakeFetcher, clock: FakeClock) -> SmartTokenVerifier:
    return SmartTokenVerifier({ISS: issuer}, KeyResolver(fetcher, clock=clock), clock=clock)


def access_claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "iss": ISS,
        "aud": FHIR,
        "exp": NOW + 300,
        "iat": NOW,
        "sub": "client-1",
        "scope": "system/Patient.rs",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def test_valid_token_gives_scopes(
    smart: SmartTokenVerifier, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign(ec_key, payload=access_claims(client_id="app", patient="p1"))
    access = smart.verify(bearer(token), FHIR)
    assert access.iss == ISS
    assert access.label == f"{ISS} app"
    assert access.scopes.patient == "p1"
    assert access.scopes.allows("Patient", "search")
    assert not access.scopes.allows("Patient", "create")


def test_scp_list_trailing_slash_and_no_iat(
    smart: SmartTokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    payload = access_claims(scope=None, scp=["system/Task.c"], aud=[f"{FHIR}/", "x"], iat=None)
    access = smart.verify(bearer(sign(rsa_key, "RS256", "rsa-1", payload)), FHIR)
    assert access.scopes.allows("Task", "create")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": NOW - 60}, "expired"),
        ({"exp": None}, "missing claim"),
        ({"nbf": NOW + 600}, "not yet valid"),
        ({"iat": NOW + 600}, "iat in future"),
        ({"aud": "https://fhir.example"}, "bad audience"),
        ({"scope": ["system/*.*", 3]}, "bad scope"),
        ({"iss": "https://other.example"}, "unknown iss"),
    ],
)
def test_bad_claims(
    smart: SmartTokenVerifier,
    ec_key: ec.EllipticCurvePrivateKey,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    with pytest.raises(AuthenticationFailed) as failure:
        smart.verify(bearer(sign(ec_key, payload=access_claims(**overrides))), FHIR)
    assert failure.value.reason == reason


def test_leeway_applies(smart: SmartTokenVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = sign(ec_key, payload=access_claims(exp=NOW - 10))
    assert smart.verify(bearer(token), FHIR).iss == ISS


@pytest.mark.parametrize(
    ("alg", "kid", "reason"),
    [
        ("ES256", "ec-1", "alg does not match key"),  # a P-384 key signs ES384 only
        ("RS384", "ec-1", "alg does not match key"),
        ("ES384", "rsa-1", "alg does not match key"),
        ("PS256", "rsa-1", "disallowed alg"),
        ("HS256", "ec-1", "disallowed alg"),
    ],
)
def test_algorithm_must_fit_the_key(
    smart: SmartTokenVerifier,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
    alg: str,
    kid: str,
    reason: str,
) -> None:
    if alg.startswith("HS"):
        key: Any = "a-shared-secret-that-is-long-enough-for-hs256"
    elif alg.startswith("ES"):
        key = ec_key if kid == "ec-1" else ec.generate_private_key(ec.SECP384R1())
        if alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa_key
    with pytest.raises(AuthenticationFailed) as failure:
        smart.verify(bearer(sign(key, alg, kid, access_claims())), FHIR)
    assert failure.value.reason == reason


def test_es256_tokens_verify_with_a_p256_key(
    tmp_path: Path, fetcher: FakeFetcher, clock: FakeClock
) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    keys = tmp_path / "smart-jwks.json"
    keys.write_text(json.dumps({"keys": [public_jwk(p256, "es256-1")]}))
    issuer = TrustedIssuer(iss=ISS, jwks_file=keys)
    smart = SmartTokenVerifier({ISS: issuer}, KeyResolver(fetcher, clock=clock), clock=clock)
    assert smart.verify(bearer(sign(p256, "ES256", "es256-1", access_claims())), FHIR).iss == ISS
    with pytest.raises(AuthenticationFailed) as failure:  # the P-256 key is for ES256 only
        smart.verify(bearer(sign(ec.generate_private_key(ec.SECP384R1()), "ES384", "es256-1",
                                 access_claims())), FHIR)  # fmt: skip
    assert failure.value.reason == "alg does not match key"
    cds = CdsJwtVerifier({ISS: issuer}, KeyResolver(fetcher, clock=clock), InMemoryReplayCache())
    with pytest.raises(AuthenticationFailed) as refused:  # CDS Hooks: ES384/RS384 only
        cds.verify(bearer(sign(p256, "ES256", "es256-1")), "https://cds.example/cds-services")
    assert refused.value.reason == "disallowed alg"


def test_access_token_typ(smart: SmartTokenVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = sign(ec_key, payload=access_claims(), typ="at+jwt")
    assert smart.verify(bearer(token), FHIR).iss == ISS
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        smart.verify(bearer(sign(ec_key, payload=access_claims(), typ="dpop+jwt")), FHIR)


def test_tenants_are_enforced(
    issuer: TrustedIssuer,
    fetcher: FakeFetcher,
    clock: FakeClock,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    restricted = issuer.model_copy(update={"tenants": frozenset({"t1"})})
    smart = SmartTokenVerifier({ISS: restricted}, KeyResolver(fetcher, clock=clock), clock=clock)
    assert smart.verify(bearer(sign(ec_key, payload=access_claims(tenant="t1"))), FHIR)
    with pytest.raises(AuthenticationFailed):
        smart.verify(bearer(sign(ec_key, payload=access_claims(tenant="t2"))), FHIR)


def test_smart_configuration_and_capability_security() -> None:
    bare = Settings(fhir_auth="required")
    assert "token_endpoint" not in smart_configuration(bare)
    assert "extension" not in (capability_security(bare) or {})
    full = Settings(
        smart_token_endpoint="https://as.example/token",
        smart_authorization_endpoint="https://as.example/authorize",
    )
    document = smart_configuration(full)
    assert document["authorization_endpoint"] == "https://as.example/authorize"
    assert document["grant_types_supported"] == ["client_credentials", "authorization_code"]
    security = capability_security(full)
    assert security is not None
    assert security["extension"][0]["extension"] == [
        {"url": "token", "valueUri": "https://as.example/token"},
        {"url": "authorize", "valueUri": "https://as.example/authorize"},
    ]
    assert capability_security(Settings(fhir_auth="off")) is None


@pytest.mark.parametrize(
    ("claim", "kept"),
    [
        ("Practitioner/dr-1", "Practitioner/dr-1"),
        ("https://ehr.example/fhir/Practitioner/123", "https://ehr.example/fhir/Practitioner/123"),
        ("Patient/p1", "Patient/p1"),
        ("RelatedPerson/r.1", "RelatedPerson/r.1"),
        ("Organization/o1", None),  # not a user
        ("Practitioner/", None),
        ("javascript:alert(1)", None),
        ("https://ehr.example/fhir/Practitioner/123?x=1", None),
        (["Practitioner/dr-1"], None),
        (42, None),
        (None, None),
    ],
)
def test_fhir_user_is_kept_for_audit_only_when_it_names_a_user(
    smart: SmartTokenVerifier, ec_key: ec.EllipticCurvePrivateKey, claim: Any, kept: str | None
) -> None:
    token = sign(ec_key, payload=access_claims(fhirUser=claim))
    access = smart.verify(bearer(token), FHIR)  # never refused for it: it grants nothing
    assert access.fhir_user == kept
