"""Extended operations (``$name``) mounted on the ``/fhir`` blueprint.

Each operation is a view with the scope it needs; the SMART guard checks it like any
other interaction before the view runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response

from fhir_ai.security.scopes import Interaction

#: Called after a commit that created a resource: (resource type, id, version id).
CreatedHook = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class Operation:
    """``rule`` (under /fhir) answered by ``view``; needs ``interaction`` on ``resource_type``."""

    name: str  # the endpoint name, unique in the blueprint
    rule: str  # e.g. "/ImagingStudy/<resource_id>/$analyze"
    view: Callable[..., Response]
    resource_type: str
    interaction: Interaction
    methods: tuple[str, ...] = ("POST",)
    system_level: bool = False  # declared at the system level of the CapabilityStatement

    @property
    def declared(self) -> tuple[str | None, str]:
        """(resource type or None, name) as the CapabilityStatement declares it."""
        return (None if self.system_level else self.resource_type, self.rule.rsplit("$", 1)[1])

    def defaults(self) -> dict[str, Any]:
        """The view arguments the rule does not carry (the type, for the SMART guard)."""
        return {"resource_type": self.resource_type}
