"""Search: US Core DiagnosticReport combinations, parameter types, paging, includes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.fhir_helpers import assert_outcome, create, ids, new_patient

pytestmark = pytest.mark.integration
LOINC = "http://loinc.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"


def _report(patient: str, category: str, code: str, when: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": V2_0074, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        **extra,
    }


@pytest.fixture
def reports(client: FlaskClient) -> dict[str, Any]:
    patient = new_patient(client)
    other = new_patient(client)
    made = {
        "rad_2019": create(client, _report(patient, "RAD", "36643-5", "2019-02-03T19:43:30Z")),
        "rad_2021": create(client, _report(patient, "RAD", "24627-2", "2021-06-01")),
        "lab_2021": create(client, _report(patient, "LAB", "58410-2", "2021-06-15T08:00:00+02:00")),
        "other_rad": create(client, _report(other, "RAD", "36643-5", "2021-06-01")),
    }
    return {"patient": patient, "ids": {k: v["id"] for k, v in made.items()}}


def _search(client: FlaskClient, query: str) -> set[str]:
    response = client.get(f"/fhir/DiagnosticReport?{query}")
    assert response.status_code == 200, response.json
    return ids(response.json)


def test_us_core_patient_and_category(client: FlaskClient, reports: dict[str, Any]) -> None:
    p, r = reports["patient"], reports["ids"]
    assert _search(client, f"patient={p}&category=RAD") == {r["rad_2019"], r["rad_2021"]}
    assert _search(client, f"patient=Patient/{p}&category={V2_0074}|LAB") == {r["lab_2021"]}
    assert _search(client, f"patient={p}&category=RAD,LAB") == set(r.values()) - {r["other_rad"]}


def test_us_core_patient_and_code(client: FlaskClient, reports: dict[str, Any]) -> None:
    p, r = reports["patient"], reports["ids"]
    assert _search(client, f"patient={p}&code={LOINC}|36643-5") == {r["rad_2019"]}
    assert _search(client, f"patient={p}&code=24627-2,58410-2") == {r["rad_2021"], r["lab_2021"]}
    assert _search(client, f"patient={p}&code=http://snomed.info/sct|36643-5") == set()


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ("date=ge2020", {"rad_2021"}),
        ("date=lt2020", {"rad_2019"}),
        ("date=2019-02-03", {"rad_2019"}),
        ("date=eq2019-02", {"rad_2019"}),
        ("date=ge2019-01-01&date=le2021-12-31", {"rad_2019", "rad_2021"}),
        ("date=gt2021-06-01", set()),
        ("date=ne2021-06-01", {"rad_2019"}),
        ("date=sa2019-02-03T19:43:30Z", {"rad_2021"}),
    ],
)
def test_us_core_patient_category_and_date(
    client: FlaskClient, reports: dict[str, Any], dates: str, expected: set[str]
) -> None:
    p, r = reports["patient"], reports["ids"]
    assert _search(client, f"patient={p}&category=RAD&{dates}") == {r[k] for k in expected}


def test_date_with_time_zone_is_compared_in_utc(
    client: FlaskClient, reports: dict[str, Any]
) -> None:
    p, r = reports["patient"], reports["ids"]
    assert _search(client, f"patient={p}&date=lt2021-06-15T06:00:01Z") == {
        r["rad_2019"],
        r["rad_2021"],
    } | {r["lab_2021"]}
    assert _search(client, f"patient={p}&category=LAB&date=gt2021-06-15T06:00:00Z") == set()


def test_paging_sorting_and_count(client: FlaskClient, reports: dict[str, Any]) -> None:
    p = reports["patient"]
    first = client.get(f"/fhir/DiagnosticReport?patient={p}&_count=2&_sort=-date").json
    assert len(first["entry"]) == 2 and "total" not in first
    dates = [e["resource"]["effectiveDateTime"] for e in first["entry"]]
    assert dates[0].startswith("2021-06-15")
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get(next_url.replace("http://localhost", "")).json
    assert [e["resource"]["effectiveDateTime"] for e in second["entry"]] == ["2019-02-03T19:43:30Z"]
    assert not any(link["relation"] == "next" for link in second["link"])
    summary = client.get(f"/fhir/DiagnosticReport?patient={p}&_summary=count").json
    assert summary["total"] == 3 and "entry" not in summary
    accurate = client.get(f"/fhir/DiagnosticReport?patient={p}&_count=1&_total=accurate").json
    assert accurate["total"] == 3


def test_include_results_and_revinclude_provenance(client: FlaskClient) -> None:
    patient = new_patient(client)
    observation = create(
        client,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "finding"},
            "subject": {"reference": f"Patient/{patient}"},
        },
    )
    report = create(
        client,
        _report(
            patient,
            "RAD",
            "36643-5",
            "2024-01-01",
            result=[{"reference": f"Observation/{observation['id']}"}],
        ),
    )
    provenance = create(
        client,
        {
            "resourceType": "Provenance",
            "target": [{"reference": f"DiagnosticReport/{report['id']}"}],
            "recorded": "2024-01-01T00:00:00Z",
            "agent": [{"who": {"display": "fhir-ai"}}],
        },
    )
    bundle = client.get(
        f"/fhir/DiagnosticReport?patient={patient}"
        "&_include=DiagnosticReport:result&_revinclude=Provenance:target"
    ).json
    assert ids(bundle) == {report["id"]}
    assert ids(bundle, "include") == {observation["id"], provenance["id"]}
    by_result = client.get(f"/fhir/DiagnosticReport?result=Observation/{observation['id']}").json
    assert ids(by_result) == {report["id"]}


def test_string_token_and_id_parameters(client: FlaskClient) -> None:
    family = f"Müller{uuid.uuid4().hex[:6]}"
    patient = create(
        client,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:mrn", "value": family}],
            "name": [{"family": family, "given": ["Zoë"]}],
            "gender": "female",
            "birthDate": "1980-05-17",
        },
    )
    pid = patient["id"]
    found = lambda q: ids(client.get(f"/fhir/Patient?{q}").json)  # noqa: E731
    assert found(f"family={family[:5].lower()}") >= {pid}
    assert found(f"family=muller{family[6:]}") == {pid}  # accents and case folded
    assert found(f"family:exact={family}") == {pid}
    assert found(f"family:exact={family.lower()}") == set()
    assert found(f"family:contains={family[3:]}") == {pid}
    assert found(f"identifier=urn:mrn|{family}") == {pid}
    assert found(f"identifier={family}&gender=female&birthdate=1980") == {pid}
    assert found(f"identifier={family}&gender=male") == set()
    assert found(f"_id={pid}") == {pid}
    assert found(f"_id={pid}&_lastUpdated=gt2000-01-01") == {pid}
    assert found(f"_id={pid}&_lastUpdated=lt2000-01-01") == set()
    assert found(f"identifier={family}&given=zo") == {pid}
    assert found(f"identifier={family}&gender:not=female") == set()
    assert found(f"identifier={family}&general-practitioner:missing=true") == {pid}


def test_post_search_and_elements(client: FlaskClient, reports: dict[str, Any]) -> None:
    p = reports["patient"]
    response = client.post(
        "/fhir/DiagnosticReport/_search",
        data={"patient": p, "category": "LAB", "_elements": "status"},
    )
    assert response.status_code == 200
    resource = response.json["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status"}
    assert resource["meta"]["tag"][-1]["code"] == "SUBSETTED"


def test_search_parameter_errors(client: FlaskClient) -> None:
    strict = {"Prefer": "handling=strict"}
    assert_outcome(client.get("/fhir/Patient?nonsense=1", headers=strict), 400)
    lenient = client.get("/fhir/Patient?nonsense=1&_count=1")
    assert lenient.status_code == 200
    outcome = [e for e in lenient.json["entry"] if e["search"]["mode"] == "outcome"]
    assert "nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert_outcome(client.get("/fhir/DiagnosticReport?date=ge2020-02-30"), 400)
    assert_outcome(client.get("/fhir/DiagnosticReport?date=yesterday"), 400)
    assert_outcome(client.get("/fhir/DiagnosticReport?_count=-1"), 400)
    assert_outcome(client.get("/fhir/DiagnosticReport?_sort=media"), 400)
    assert_outcome(client.get("/fhir/DiagnosticReport?status:above=final"), 400)
    assert_outcome(client.get("/fhir/DiagnosticReport?_summary=text"), 400)


def test_modifiers_on_result_parameters_are_refused(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/Patient?_id:missing=false"), 400)
