"""A job's results and its Task's completion, written in one transaction.

A job returns :class:`JobResults`: the transaction Bundle of what it made, not yet
written, and which of its entries are the Task's outputs. :func:`completing` adds the
entry that completes the Task, so the results and the ``completed`` Task are committed
together: a Task is never completed without its results, and results are never left
behind a Task still in progress. The Task entry is a PUT with ``ifMatch`` on the version
the job started from, so a Task that changed meanwhile (failed by the watchdog past its
time limit, finished by a redelivered copy of the job) refuses the whole transaction
(412) and nothing of this run is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_ai.jobs.task_resource import completed


@dataclass(frozen=True, slots=True)
class JobResults:
    """The entries a job writes (a transaction Bundle's ``entry`` list) and the fullUrls
    of those that are its Task's outputs."""

    entries: tuple[dict[str, Any], ...] = ()
    outputs: tuple[str, ...] = ()

    @classmethod
    def of(cls, bundle: dict[str, Any], output_type: str | None = None) -> JobResults:
        """The entries of ``bundle``; its outputs are the entries of ``output_type``
        (every entry when None)."""
        entries = tuple(bundle.get("entry") or ())
        outputs = tuple(
            entry["fullUrl"]
            for entry in entries
            if output_type is None or entry["resource"]["resourceType"] == output_type
        )
        return cls(entries, outputs)


def completing(results: JobResults, task: dict[str, Any]) -> dict[str, Any]:
    """The transaction Bundle that writes ``results`` and completes ``task`` (the Task as
    the job started it: its ``meta.versionId`` is the version the PUT must still find)."""
    entry = {
        "resource": completed(task, list(results.outputs)),
        "request": {
            "method": "PUT",
            "url": f"Task/{task['id']}",
            "ifMatch": f'W/"{task["meta"]["versionId"]}"',
        },
    }
    return {"resourceType": "Bundle", "type": "transaction", "entry": [*results.entries, entry]}


def output_references(results: JobResults, written: list[str]) -> list[str]:
    """The ``Type/id`` the transaction gave each output (``written``: one per entry, in
    the order of :func:`completing`'s Bundle)."""
    stored = dict(zip((entry["fullUrl"] for entry in results.entries), written, strict=False))
    return [stored[full_url] for full_url in results.outputs]
