"""The registry of resource types and their search parameters, loaded from data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fhir_ai.fhir.search.fhirpath import Expression, compile_expression

ParamType = Literal["token", "reference", "date", "string", "uri"]
DEFINITIONS = Path(__file__).with_name("search_parameters.json")

#: Parameters every type supports, answered from the resource table itself.
RESULT_PARAMETERS = ("_id", "_lastUpdated")
#: Parameters that control the result rather than select resources.
CONTROL_PARAMETERS = frozenset(
    {"_count", "_offset", "_sort", "_summary", "_total", "_include", "_revinclude",
     "_format", "_elements", "_pretty"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SearchParameter:
    """One search parameter of one resource type."""

    resource_type: str
    name: str
    type: ParamType
    expression_text: str
    expression: Expression


class SearchRegistry:
    """Which resource types the server supports, and the search parameters of each."""

    def __init__(self, definitions: dict[str, dict[str, dict[str, str]]]) -> None:
        self._params: dict[str, dict[str, SearchParameter]] = {
            resource_type: {
                name: SearchParameter(
                    resource_type,
                    name,
                    spec["type"],  # type: ignore[arg-type]
                    spec["expression"],
                    compile_expression(spec["expression"]),
                )
                for name, spec in params.items()
            }
            for resource_type, params in definitions.items()
        }

    @classmethod
    def load(cls, path: Path = DEFINITIONS) -> SearchRegistry:
        """Load the registry from its JSON definitions."""
        return cls(json.loads(path.read_text())["resources"])

    @property
    def resource_types(self) -> list[str]:
        """The supported resource types, in registration order."""
        return list(self._params)

    def supports(self, resource_type: str) -> bool:
        """True if the resource type is registered."""
        return resource_type in self._params

    def parameters(self, resource_type: str) -> dict[str, SearchParameter]:
        """The search parameters of a type (empty for an unknown type)."""
        return self._params.get(resource_type, {})

    def get(self, resource_type: str, name: str) -> SearchParameter | None:
        """One parameter, or None."""
        return self._params.get(resource_type, {}).get(name)
