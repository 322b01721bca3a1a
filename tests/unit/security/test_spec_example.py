"""The CDS Hooks 2.0.1 specification's own ES384 example token and public JWKS."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fhir_ai.security.cds_jwt import (
    AuthenticationFailed,
    CdsJwtVerifier,
    InMemoryReplayCache,
    KeyResolver,
    TrustedIssuer,
)

from .conftest import FakeFetcher

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def spec_dir() -> Path:
    base = Path(os.environ.get("FHIR_AI_SHARED_DATA_DIR", REPO_ROOT / ".." / "shared" / "data"))
    path = (base / "cds" / "spec-2.0.1").resolve()
    if not (path / "jwt-example-authorization-header.txt").is_file():
        pytest.skip(f"CDS Hooks spec examples not found under {path}")
    return path


def example_header(spec_dir: Path) -> str:
    text = (spec_dir / "jwt-example-authorization-header.txt").read_text().strip()
    return text.removeprefix("Authorization:").strip()


def example_verifier(
    spec_dir: Path, now: float | None, max_lifetime_s: int = 3600
) -> CdsJwtVerifier:
    payload = json.loads((spec_dir / "jwt-payload-example.json").read_text())
    issuer = TrustedIssuer(iss=payload["iss"], jwks_file=spec_dir / "jwks-public-example.json")
    clock: Callable[[], float] = time.time if now is None else (lambda: now)
    return CdsJwtVerifier(
        {issuer.iss: issuer},
        KeyResolver(FakeFetcher()),
        InMemoryReplayCache(clock=clock),
        clock=clock,
        max_lifetime_s=max_lifetime_s,
    )


def test_example_verifies_inside_its_validity_window(spec_dir: Path) -> None:
    payload = json.loads((spec_dir / "jwt-payload-example.json").read_text())
    # The example lives for 3.5 years (iat 2011, exp 2015): allow that lifetime here.
    verifier = example_verifier(spec_dir, now=1_400_000_000, max_lifetime_s=200_000_000)
    client = verifier.verify(example_header(spec_dir), payload["aud"])
    assert client.iss == "https://fhir-ehr.example.com/"
    assert client.kid == "example-kid"
    assert client.jti == payload["jti"]
    assert client.tenant == payload["tenant"]
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.verify(example_header(spec_dir), payload["aud"])
    assert caught.value.reason == "replayed jti"


def test_example_lifetime_exceeds_the_default_maximum(spec_dir: Path) -> None:
    payload = json.loads((spec_dir / "jwt-payload-example.json").read_text())
    with pytest.raises(AuthenticationFailed) as caught:
        example_verifier(spec_dir, now=1_400_000_000).verify(
            example_header(spec_dir), payload["aud"]
        )
    assert caught.value.reason == "bad lifetime"


def test_example_is_expired_today(spec_dir: Path) -> None:
    payload = json.loads((spec_dir / "jwt-payload-example.json").read_text())
    with pytest.raises(AuthenticationFailed) as caught:
        example_verifier(spec_dir, now=None).verify(example_header(spec_dir), payload["aud"])
    assert caught.value.reason == "expired"
