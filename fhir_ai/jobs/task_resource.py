"""The FHIR Task of a job: how it is built and how it moves through its states.

requested -> in-progress -> completed (``output``: the result) or failed
(``statusReason`` and a contained OperationOutcome in ``output``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fhir_ai.fhir.ai_results import JOB_TYPES

JOB_KEYS: Final = "https://fhir-ai.org/fhir/NamingSystem/job-key"
JOB_PARAMETERS: Final = "https://fhir-ai.org/fhir/CodeSystem/job-parameter"
ACTIVE_STATES: Final = frozenset({"requested", "received", "accepted", "ready", "in-progress"})


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What to run: the job type, its input resource and its idempotency key."""

    job_type: str  # a code of JOB_TYPES: imaging-analysis, nlp-extraction
    task_name: str  # the Celery task that runs it
    focus: str  # "ImagingStudy/<id>", "DocumentReference/<id>"
    key: str  # the same key for the same input and model/pipeline version
    subject: str | None = None  # "Patient/<id>"
    parameters: tuple[tuple[str, str], ...] = ()  # e.g. (("model", "pneumonia-cxr"),)

    def task(self) -> dict[str, Any]:
        """A new Task (status requested) for this request."""
        task: dict[str, Any] = {
            "resourceType": "Task",
            "identifier": [{"system": JOB_KEYS, "value": self.key}],
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": JOB_TYPES, "code": self.job_type}]},
            "focus": {"reference": self.focus},
            "authoredOn": _now(),
            "lastModified": _now(),
            "input": [_parameter(name, value) for name, value in self.parameters],
        }
        if self.subject:
            task["for"] = {"reference": self.subject}
        if not task["input"]:
            del task["input"]
        return task


def parameter(task: dict[str, Any], name: str) -> str | None:
    """The value of the Task input ``name``."""
    for item in task.get("input", []):
        codings = item.get("type", {}).get("coding", [])
        if any(c.get("system") == JOB_PARAMETERS and c.get("code") == name for c in codings):
            value = item.get("valueString")
            return value if isinstance(value, str) else None
    return None


NOT_QUEUED: Final = "not-queued"
#: ``meta.tag`` of a completed Task whose notifications or write-back could not be queued.
FOLLOW_UP_PENDING: Final = "follow-up-pending"


def with_follow_up_pending(task: dict[str, Any], pending: bool) -> dict[str, Any]:
    """The Task with the follow-up-pending tag set or cleared."""
    meta = dict(task.get("meta", {}))
    tags = [t for t in meta.get("tag", []) if t.get("code") != FOLLOW_UP_PENDING]
    if pending:
        tags.append({"system": JOB_PARAMETERS, "code": FOLLOW_UP_PENDING})
    meta["tag"] = tags
    if not tags:
        del meta["tag"]
    return {**task, "meta": meta}


def not_queued(task: dict[str, Any]) -> dict[str, Any]:
    """The Task still ``requested``, marked as not yet on the queue (the broker was down)."""
    status = {"coding": [{"system": JOB_PARAMETERS, "code": NOT_QUEUED}], "text": "Not queued yet"}
    return {**task, "businessStatus": status, "lastModified": _now()}


def unqueued(task: dict[str, Any]) -> bool:
    """True for a requested Task that never reached the queue."""
    codings = task.get("businessStatus", {}).get("coding", [])
    return task.get("status") == "requested" and any(c.get("code") == NOT_QUEUED for c in codings)


def requeued(task: dict[str, Any]) -> dict[str, Any]:
    """The Task back in ``requested`` (a failed job submitted again)."""
    task = _without(task, "statusReason", "output", "businessStatus")
    return {**task, "status": "requested", "lastModified": _now()}


def started(task: dict[str, Any], worker: str) -> dict[str, Any]:
    """The Task ``in-progress`` on ``worker``."""
    period = {"start": _now()}
    return {
        **_without(task, "statusReason", "output"),
        "status": "in-progress",
        "lastModified": _now(),
        "executionPeriod": period,
        "owner": {"display": worker},
    }


def completed(task: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
    """The Task ``completed`` with references to its results."""
    done = {
        **task,
        "status": "completed",
        "lastModified": _now(),
        "executionPeriod": {**task.get("executionPeriod", {}), "end": _now()},
        "output": [
            {"type": {"text": "result"}, "valueReference": {"reference": ref}} for ref in outputs
        ],
    }
    if not outputs:
        del done["output"]
    return done


def failed(task: dict[str, Any], reason: str, issue_code: str) -> dict[str, Any]:
    """The Task ``failed``: the reason in ``statusReason`` and an OperationOutcome output."""
    outcome = {
        "resourceType": "OperationOutcome",
        "id": "failure",
        "issue": [{"severity": "error", "code": issue_code, "diagnostics": reason}],
    }
    return {
        **_without(task, "output"),
        "status": "failed",
        "lastModified": _now(),
        "statusReason": {"text": reason},
        "executionPeriod": {**task.get("executionPeriod", {}), "end": _now()},
        "contained": [outcome],
        "output": [{"type": {"text": "error"}, "valueReference": {"reference": "#failure"}}],
    }


def _parameter(name: str, value: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": JOB_PARAMETERS, "code": name}]},
        "valueString": value,
    }


def _without(task: dict[str, Any], *keys: str) -> dict[str, Any]:
    drop = {*keys, "contained"} if "output" in keys else set(keys)
    return {k: v for k, v in task.items() if k not in drop}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
