"""What a CDS service is: a descriptor as data and a pure ``evaluate``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from fhir_ai.cds.models import CdsResponse
from fhir_ai.cds.requests import HookContext


@dataclass(frozen=True, slots=True)
class HookCall:
    """Everything a service may look at: resolved before it runs, so it does no I/O."""

    service_id: str
    hook: str
    hook_instance: str
    context: HookContext
    prefetch: Mapping[str, Any]
    fhir_server: str | None
    base_url: str


class CdsService(Protocol):
    """A CDS service: its discovery data and a pure evaluation.

    ``hooks`` lists every hook it answers (one discovery entry each, same ``id``).
    ``required_prefetch`` names the prefetch keys without which it cannot answer (412).
    ``version`` names the rules or model behind its cards (stored with each card).
    """

    id: str
    hooks: tuple[str, ...]
    title: str
    description: str
    prefetch: Mapping[str, str]
    required_prefetch: frozenset[str]
    usage_requirements: str | None
    version: str

    def evaluate(self, call: HookCall) -> CdsResponse:
        """The cards (``[]`` means no guidance) and any ``systemActions`` for this call."""
        ...


def utc_now() -> datetime:
    """The services' default clock: now, as naive UTC like the store's timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)
