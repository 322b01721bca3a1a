"""Writing a finished AI report back to the EHR's FHIR server (SMART Backend Services).

The report and its result Observations go as one transaction Bundle of conditional
creates (``ifNoneExist`` on each resource's first identifier, or on one naming our copy
for a resource without any), so a write-back repeated
after a redelivery or a retry creates nothing twice. References between them become
``urn:uuid`` entries; references to resources only this server holds (the model Device,
the source document or study) are left out: the EHR cannot resolve them.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import requests

from fhir_ai.errors import FhirAiError, NotFound
from fhir_ai.security.backend_services import BackendServicesClient
from fhir_ai.store.repository import StoreSession
from fhir_ai.subscriptions.delivery import DeliveryFailed
from fhir_ai.subscriptions.matching import FHIR_JSON

#: Identifies a written-back resource without an identifier of its own by our ``Type/id``.
SOURCE_IDS: Final = "https://fhir-ai.org/fhir/NamingSystem/source-resource"
KEPT_META: Final = ("security", "tag", "profile")
LOCAL_ONLY: Final = ("device", "derivedFrom", "imagingStudy", "media", "basedOn", "hasMember")


class WriteBackRefused(FhirAiError):
    """The EHR refused the report (a 4xx other than 401/408/429): not retried."""

    http_status = 502
    issue_code = "processing"


def report_bundle(session: StoreSession, reference: str) -> dict[str, Any]:
    """The transaction Bundle that writes ``DiagnosticReport/<id>`` and its results."""
    kind, _, report_id = reference.partition("/")
    report = session.read(kind, report_id).content
    if report is None:
        raise NotFound(f"{reference} is deleted")
    urns: dict[str, str] = {}
    observations = []
    for result in report.get("result", []):
        target = str(result.get("reference", ""))
        obs_kind, _, obs_id = target.partition("/")
        content = session.read(obs_kind, obs_id).content if obs_id else None
        if content is not None:
            urns[target] = f"urn:uuid:{uuid.uuid4()}"
            observations.append((urns[target], content))
    report = {**report, "result": [{"reference": urn} for urn in urns.values()]}
    entries = [_entry(f"urn:uuid:{uuid.uuid4()}", report)]
    entries += [_entry(urn, content) for urn, content in observations]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _entry(urn: str, resource: dict[str, Any]) -> dict[str, Any]:
    drop = {"id", "meta", *LOCAL_ONLY}
    clean = {k: v for k, v in resource.items() if k not in drop}
    labels = {k: v for k, v in resource.get("meta", {}).items() if k in KEPT_META}
    if labels:  # the AI-asserted security label travels with the report
        clean["meta"] = labels
    if not clean.get("result"):
        clean.pop("result", None)
    identifiers = [i for i in resource.get("identifier") or [] if i.get("system") and "value" in i]
    if not identifiers:  # a stable identifier of our copy, so that a retry finds it
        own = {"system": SOURCE_IDS, "value": f"{resource['resourceType']}/{resource['id']}"}
        identifiers = [own]
        clean["identifier"] = [*clean.get("identifier", []), own]
    criteria = f"identifier={identifiers[0]['system']}|{identifiers[0]['value']}"
    request = {"method": "POST", "url": resource["resourceType"], "ifNoneExist": criteria}
    return {"fullUrl": urn, "resource": clean, "request": request}


def send_bundle(
    bundle: dict[str, Any],
    base_url: str,
    client: BackendServicesClient,
    http: requests.Session,
    timeout_s: float,
) -> str:
    """POST the transaction to ``base_url``; the location of the report on the EHR.

    :class:`DeliveryFailed` (retry later) for network errors, 401 (after one token
    refresh), 408, 429 and 5xx; :class:`WriteBackRefused` for other 4xx.
    """
    for attempt in (1, 2):
        headers = {
            "Authorization": client.authorization_header(),
            "Content-Type": FHIR_JSON,
            "Accept": FHIR_JSON,
        }
        try:
            response = http.post(
                base_url.rstrip("/"), json=bundle, headers=headers, timeout=timeout_s,
                allow_redirects=False,
            )  # fmt: skip
        except requests.RequestException as error:
            raise DeliveryFailed(f"FHIR server not reachable ({type(error).__name__})") from error
        if response.status_code == 401 and attempt == 1:
            client.invalidate()
            continue
        break
    status = response.status_code
    if status in (401, 408, 429) or status >= 500:
        raise DeliveryFailed(f"FHIR server answered HTTP {status}")
    if not 200 <= status < 300:
        raise WriteBackRefused(f"FHIR server refused the report: HTTP {status}")
    entries = response.json().get("entry", [])
    return str(entries[0].get("response", {}).get("location", "")) if entries else ""
