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
