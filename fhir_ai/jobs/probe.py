"""Fleet probe jobs: a Task on the ``default`` queue that waits, then writes one Observation.

A probe goes through everything a real job does (the Task's states, the broker, a worker,
an idempotent result write by conditional create, the completion listeners) without a
model: ``fhir-ai fleet probe``, the fault tests and ``bench/fleet.py`` use it.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from fhir_ai.jobs.routing import PROBE
from fhir_ai.jobs.task_resource import JOB_KEYS, JobRequest

FLEET_PROBE: Final = "fleet-probe"
MAX_PROBE_SECONDS: Final = 300.0
PROBE_CODES: Final = "https://fhir-ai.org/fhir/CodeSystem/fleet"


def probe_request(name: str, seconds: float = 0.0) -> JobRequest:
    """The probe job ``name`` (its idempotency key) that works for ``seconds``."""
    seconds = min(max(seconds, 0.0), MAX_PROBE_SECONDS)
    return JobRequest(
        job_type=FLEET_PROBE,
        task_name=PROBE,
        focus=f"Observation/{FLEET_PROBE}",
        key=f"{FLEET_PROBE}/{name}",
        parameters=(("seconds", f"{seconds:g}"),),
    )


def probe_result(key: str) -> dict[str, Any]:
    """The transaction Bundle that records a probe's result once per key."""
    observation = {
        "resourceType": "Observation",
        "identifier": [{"system": JOB_KEYS, "value": key}],
        "status": "final",
        "code": {"coding": [{"system": PROBE_CODES, "code": FLEET_PROBE}]},
        "valueString": "fleet probe done",
    }
    request = {
        "method": "POST",
        "url": "Observation",
        "ifNoneExist": f"identifier={JOB_KEYS}|{key}",
    }
    entry = {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": observation, "request": request}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
