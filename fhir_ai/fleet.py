"""``fhir-ai fleet status``: queue depths, live workers and their tasks, job Tasks by state.

Reads the broker (Redis lists of the kombu transport), asks the workers (Celery remote
control ``ping``/``active``) and counts the job Tasks in the store. Each part reports its
own failure instead of failing the whole status. No worker code is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from kombu.connection import Connection

from fhir_ai.fhir.service import FhirService
from fhir_ai.jobs.routing import QUEUE_NAMES
from fhir_ai.store.repository import ResourceStore

TASK_STATES: Final = ("requested", "in-progress", "completed", "failed")
#: kombu's Redis transport keeps priority levels 3, 6, 9 in lists ``<queue>\x06\x16<n>``.
_PRIORITY_SUFFIXES: Final = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_UNACKED_KEY: Final = "unacked"
FAILING_SHOWN: Final = 10


@dataclass(frozen=True, slots=True)
class WorkerState:
    """A worker that answered ``ping``, its queues and its running task count."""

    name: str
    queues: list[str]
    active: int


@dataclass(frozen=True, slots=True)
class FailingTask:
    """A recently failed job Task and its reason."""

    task_id: str
    reason: str
    last_modified: str


@dataclass(slots=True)
class FleetStatus:
    """Everything ``fleet status`` shows; ``errors`` names the parts that could not be read."""

    queues: dict[str, int] = field(default_factory=dict)
    reserved: int | None = None
    workers: list[WorkerState] = field(default_factory=list)
    tasks: dict[str, int] = field(default_factory=dict)
    failing: list[FailingTask] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def queue_depths(broker_url: str, timeout_s: float = 3.0) -> tuple[dict[str, int], int]:
    """Messages waiting per queue, and messages reserved by workers but not yet acked."""
    with Connection(broker_url, connect_timeout=timeout_s) as connection:  # type: ignore[no-untyped-call]
        client = connection.default_channel.client
        depths = {
            queue: sum(int(client.llen(queue + suffix)) for suffix in _PRIORITY_SUFFIXES)
            for queue in QUEUE_NAMES
        }
        return depths, int(client.hlen(_UNACKED_KEY))


def live_workers(control: Any, timeout_s: float = 2.0) -> list[WorkerState]:
    """The workers answering ``ping`` within ``timeout_s`` (``control``: ``app.control``)."""
    inspect = control.inspect(timeout=timeout_s)
    names = sorted(inspect.ping() or {})
    if not names:
        return []
    active = control.inspect(timeout=timeout_s, destination=names).active() or {}
    queues = control.inspect(timeout=timeout_s, destination=names).active_queues() or {}
    return [
        WorkerState(
            name=name,
            queues=sorted(q.get("name", "") for q in queues.get(name, [])),
            active=len(active.get(name, [])),
        )
        for name in names
    ]


def task_counts(store: ResourceStore, fhir: FhirService) -> dict[str, int]:
    """Job Tasks per state (``Task?status=<state>&_summary=count``)."""
    counts: dict[str, int] = {}
    with store.session(read_only=True) as session:
        for state in TASK_STATES:
            params = [("status", state), ("_summary", "count")]
            query = fhir.parse_search("Task", params, strict=True)
            counts[state] = int(session.search(query, "").total or 0)
    return counts


def failing_tasks(store: ResourceStore, fhir: FhirService) -> list[FailingTask]:
    """The most recently failed Tasks, newest first."""
    params = [("status", "failed"), ("_sort", "-_lastUpdated"), ("_count", str(FAILING_SHOWN))]
    query = fhir.parse_search("Task", params, strict=True)
    with store.session(read_only=True) as session:
        found = session.search(query, "").matches
    return [
        FailingTask(
            task_id=m.id,
            reason=str((m.content or {}).get("statusReason", {}).get("text", "")),
            last_modified=str((m.content or {}).get("lastModified", "")),
        )
        for m in found
    ]


def collect(broker_url: str, control: Any, store: ResourceStore, fhir: FhirService) -> FleetStatus:
    """The whole status; a part that fails is named in ``errors``."""
    status = FleetStatus()

    def attempt(part: str, read: Callable[[], None]) -> None:
        try:
            read()
        except Exception as error:  # each part reports for itself
            status.errors[part] = type(error).__name__

    def read_broker() -> None:
        status.queues, status.reserved = queue_depths(broker_url)

    def read_workers() -> None:
        status.workers = live_workers(control)

    def read_store() -> None:
        status.tasks = task_counts(store, fhir)
        status.failing = failing_tasks(store, fhir)

    attempt("broker", read_broker)
    attempt("workers", read_workers)
    attempt("store", read_store)
    return status


def render_table(status: FleetStatus) -> str:
    """The status as plain-text tables."""
    lines = ["QUEUE       WAITING"]
    lines += [f"{name:<11} {depth:>7}" for name, depth in status.queues.items()]
    if status.reserved is not None:
        lines.append(f"{'(reserved)':<11} {status.reserved:>7}")
    lines += ["", "WORKER                              ACTIVE  QUEUES"]
    lines += [f"{w.name:<35} {w.active:>6}  {','.join(w.queues)}" for w in status.workers]
    if not status.workers:
        lines.append("(no worker answered)")
    lines += ["", "TASKS " + "  ".join(f"{k}={v}" for k, v in status.tasks.items())]
    lines += [f"  failed Task/{f.task_id} {f.last_modified}: {f.reason}" for f in status.failing]
    lines += [f"! {part} unavailable ({error})" for part, error in status.errors.items()]
    return "\n".join(lines)
