"""Prefetch against a running fhir-ai server acting as the EHR's FHIR server."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests

from fhir_ai.cds.prefetch import (
    FhirAccess,
    HttpFhirReader,
    fhir_access,
    render_template,
    resolve_prefetch,
)
from fhir_ai.cds.requests import FhirAuthorization
from fhir_ai.errors import InvalidRequest, PrefetchUnavailable

pytestmark = pytest.mark.integration
TOKENS = frozenset({"userId", "patientId", "encounterId"})
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "reports": "DiagnosticReport?patient={{context.patientId}}&_count=2",
    "user": "Practitioner/{{userPractitionerId}}",
}


class RecordingReader(HttpFhirReader):
    """The HTTP reader, recording the URLs and tokens it was asked for."""

    def __init__(self) -> None:
        super().__init__(timeout_s=2)
        self.calls: list[tuple[str, str | None]] = []

    def get(self, url: str, access_token: str | None) -> dict[str, Any] | None:
        self.calls.append((url, access_token))
        return super().get(url, access_token)


def _access(server: str, token: str = "tok", seconds: float = 300) -> FhirAccess:
    return FhirAccess(server, token, time.monotonic() + seconds)


def _seed(server_url: str) -> str:
    def create(resource: dict[str, Any]) -> str:
        response = requests.post(
            f"{server_url}/{resource['resourceType']}", json=resource, timeout=5
        )
        assert response.status_code == 201
        return str(response.json()["id"])

    patient = create({"resourceType": "Patient", "name": [{"family": "Prefetch"}]})
    for day in range(1, 6):
        create({
            "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CXR"},
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": f"2024-01-0{day}",
        })  # fmt: skip
    return patient


def test_missing_keys_are_fetched_with_the_token_and_pages_followed(server_url: str) -> None:
    patient = _seed(server_url)
    reader = RecordingReader()
    context = {"userId": "PractitionerRole/r1", "patientId": patient}
    resolved = resolve_prefetch(
        TEMPLATES, frozenset({"patient", "reports"}), context, TOKENS,
        sent={"user": None}, access=_access(server_url, "tok-123"), reader=reader,
    )  # fmt: skip
    assert resolved["patient"]["id"] == patient
    assert len(resolved["reports"]["entry"]) == 5  # three pages of two, merged
    assert resolved["user"] is None  # sent as null: known empty, not fetched
    assert {token for _, token in reader.calls} == {"tok-123"}
    assert len(reader.calls) == 4


def test_operation_outcome_values_are_refetched_and_sent_values_used(server_url: str) -> None:
    patient = _seed(server_url)
    outcome = {"resourceType": "OperationOutcome", "issue": []}
    reader = RecordingReader()
    sent = {"patient": outcome, "reports": {"resourceType": "Bundle", "type": "searchset"}}
    resolved = resolve_prefetch(
        TEMPLATES, frozenset({"patient"}), {"patientId": patient}, TOKENS,
        sent=sent, access=_access(server_url), reader=reader,
    )  # fmt: skip
    assert resolved["patient"]["resourceType"] == "Patient"
    assert resolved["reports"] == sent["reports"]
    assert "user" not in resolved  # optional, and no userId to render it with
    assert reader.calls == [(f"{server_url}/Patient/{patient}", "tok")]


def test_outcomes_inside_a_searchset_mean_partial_data(server_url: str) -> None:
    patient = _seed(server_url)

    def searchset(severity: str) -> dict[str, Any]:
        outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": severity}]}
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": outcome, "search": {"mode": "outcome"}}],
        }

    reader = RecordingReader()
    resolved = resolve_prefetch(
        {"reports": TEMPLATES["reports"]}, frozenset({"reports"}), {"patientId": patient},
        TOKENS, sent={"reports": searchset("error")}, access=_access(server_url), reader=reader,
    )  # fmt: skip
    assert len(resolved["reports"]["entry"]) == 5  # refetched, not taken as complete
    informational = searchset("information")
    kept = resolve_prefetch(
        {"reports": TEMPLATES["reports"]}, frozenset({"reports"}), {"patientId": patient},
        TOKENS, sent={"reports": informational}, access=None, reader=reader,
    )  # fmt: skip
    assert kept == {"reports": informational}

    class PartialReader:
        def get(self, url: str, access_token: str | None) -> dict[str, Any] | None:
            return searchset("warning")

    with pytest.raises(PrefetchUnavailable):  # fetched, and the server says it is partial
        resolve_prefetch(
            {"reports": TEMPLATES["reports"]}, frozenset({"reports"}), {"patientId": patient},
            TOKENS, sent=None, access=_access("https://ehr.example/fhir"), reader=PartialReader(),
        )  # fmt: skip


def test_no_token_or_an_expired_one_means_no_fetch(server_url: str) -> None:
    patient = _seed(server_url)
    for access in (None, _access(server_url, seconds=-1)):
        reader = RecordingReader()
        with pytest.raises(PrefetchUnavailable):
            resolve_prefetch(
                TEMPLATES, frozenset({"patient"}), {"patientId": patient}, TOKENS,
                sent=None, access=access, reader=reader,
            )  # fmt: skip
        assert reader.calls == []


def test_fhir_access_needs_a_token_and_https() -> None:
    authorization = FhirAuthorization.model_validate(
        {
            "access_token": "secret",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read",
            "subject": "cds-service",
        }
    )
    assert fhir_access("https://ehr.example/fhir", None, allow_http=False) is None
    access = fhir_access("https://ehr.example/fhir/", authorization, allow_http=False)
    assert access is not None and access.server == "https://ehr.example/fhir"
    assert "secret" not in repr(access)
    with pytest.raises(InvalidRequest) as refused:
        fhir_access("http://ehr.example/fhir", authorization, allow_http=False)
    assert refused.value.expression == "fhirServer"
    assert fhir_access("http://127.0.0.1:8080/fhir", authorization, allow_http=True) is not None
    expired = authorization.model_copy(update={"expires_in": 0})
    stale = fhir_access("https://ehr.example/fhir", expired, allow_http=False)
    assert stale is not None and stale.expires_at <= time.monotonic()


def test_unknown_resource_is_known_empty(server_url: str) -> None:
    resolved = resolve_prefetch(
        {"patient": "Patient/{{context.patientId}}"}, frozenset({"patient"}),
        {"patientId": "nope"}, TOKENS, sent=None, access=_access(server_url),
        reader=HttpFhirReader(),
    )  # fmt: skip
    assert resolved == {"patient": None}


def test_server_down_or_absent_is_412() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for server in (f"http://127.0.0.1:{port}/fhir", None):
        with pytest.raises(PrefetchUnavailable) as caught:
            resolve_prefetch(
                TEMPLATES, frozenset({"patient"}), {"patientId": "p1"}, TOKENS, sent=None,
                access=_access(server, "secret-token") if server else None,
                reader=HttpFhirReader(timeout_s=1),
            )  # fmt: skip
        assert caught.value.http_status == 412
        assert "secret-token" not in str(caught.value)


def test_next_links_to_other_servers_are_not_followed() -> None:
    class FakeReader:
        def __init__(self) -> None:
            self.urls: list[str] = []

        def get(self, url: str, access_token: str | None) -> dict[str, Any] | None:
            self.urls.append(url)
            elsewhere = {"relation": "next", "url": "https://evil.example/fhir/x?page=2"}
            return {"resourceType": "Bundle", "type": "searchset", "entry": [{}],
                    "link": [elsewhere]}  # fmt: skip

    reader = FakeReader()
    resolved = resolve_prefetch(
        {"obs": "Observation?patient={{context.patientId}}"}, frozenset(), {"patientId": "p"},
        TOKENS, sent=None, access=_access("https://ehr.example/fhir"), reader=reader,
    )  # fmt: skip
    assert reader.urls == ["https://ehr.example/fhir/Observation?patient=p"]
    assert len(resolved["obs"]["entry"]) == 1


def test_render_template_tokens() -> None:
    context = {"userId": "Practitioner/abc", "patientId": "p1", "draftOrders": {"x": 1}}
    assert render_template("Patient/{{context.patientId}}", context, TOKENS) == "Patient/p1"
    assert render_template("Practitioner/{{userPractitionerId}}", context, TOKENS) == (
        "Practitioner/abc"
    )
    assert render_template("PractitionerRole/{{userPractitionerRoleId}}", context, TOKENS) is None
    assert render_template("X?e={{context.encounterId}}", context, TOKENS) is None
    assert render_template("X?d={{context.draftOrders}}", context, TOKENS) is None
