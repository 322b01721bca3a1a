"""OperationOutcome resources for errors and warnings."""

from __future__ import annotations

from typing import Any


def operation_outcome(
    code: str, diagnostics: str, severity: str = "error", expression: str | None = None
) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def is_operation_outcome(value: Any) -> bool:
    """True if ``value`` is an OperationOutcome resource."""
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


_PROBLEMS = frozenset({"fatal", "error", "warning"})


def reports_failure(value: Any) -> bool:
    """True if ``value`` is an OperationOutcome, or a Bundle holding one (a searchset's
    ``search.mode = outcome`` entry) with a fatal, error or warning issue: the data may be
    missing or partial. Information-only outcomes do not count."""
    if is_operation_outcome(value):
        return True
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return False
    return any(
        isinstance(entry, dict) and _has_problem(entry.get("resource"))
        for entry in value.get("entry") or []
    )


def _has_problem(resource: Any) -> bool:
    return is_operation_outcome(resource) and any(
        isinstance(issue, dict) and issue.get("severity") in _PROBLEMS
        for issue in resource.get("issue") or []
    )
