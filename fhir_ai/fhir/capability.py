"""The CapabilityStatement, generated from what the server really registers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir_ai import __version__
from fhir_ai.fhir.search.parameters import SearchRegistry

#: Where this server's OperationDefinitions are named (``$analyze``, ``$extract``).
OPERATION_DEFINITIONS = "https://fhir-ai.org/fhir/OperationDefinition"
_INTERACTIONS = ["read", "vread", "update", "delete", "history-instance", "create", "search-type"]
_COMMON_PARAMS = [
    {
        "name": "_id",
        "type": "token",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
    },
    {
        "name": "_lastUpdated",
        "type": "date",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    },
]


def capability_statement(
    registry: SearchRegistry,
    base_url: str,
    security: dict[str, Any] | None = None,
    operations: Sequence[tuple[str | None, str]] = (),
) -> dict[str, Any]:
    """Describe the server: types, interactions, search parameters, conditional support.

    ``security`` becomes ``rest[0].security`` (the SMART on FHIR block) when given;
    ``operations`` are (resource type or None for system level, name without ``$``).
    """
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "publisher": "fhir-ai",
        "kind": "instance",
        "software": {"name": "fhir-ai", "version": __version__},
        "implementation": {"description": "fhir-ai FHIR R4 server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": [_resource(registry, t) for t in registry.resource_types],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
    if security is not None:
        statement["rest"][0]["security"] = security
    _add_operations(statement["rest"][0], operations)
    return statement


def _add_operations(rest: dict[str, Any], operations: Sequence[tuple[str | None, str]]) -> None:
    """Declare each extended operation on its resource (or at system level)."""
    by_type = {entry["type"]: entry for entry in rest["resource"]}
    for resource_type, name in operations:
        declared = {"name": name, "definition": f"{OPERATION_DEFINITIONS}/{name}"}
        target = by_type.get(resource_type) if resource_type else rest
        if target is not None:
            target.setdefault("operation", []).append(declared)


def _resource(registry: SearchRegistry, resource_type: str) -> dict[str, Any]:
    parameters = registry.parameters(resource_type)
    references = [name for name, p in parameters.items() if p.type == "reference"]
    revincludes = ["Provenance:target"]
    if resource_type == "Patient":
        revincludes += [
            f"{source}:patient"
            for source in registry.resource_types
            if registry.get(source, "patient") is not None
        ]
    return {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchInclude": [f"{resource_type}:{name}" for name in references],
        "searchRevInclude": sorted(set(revincludes)),
        "searchParam": _COMMON_PARAMS
        + [
            {
                "name": name,
                "type": p.type,
                "definition": f"http://hl7.org/fhir/SearchParameter/{resource_type}-{name}",
                "documentation": p.expression_text,
            }
            for name, p in parameters.items()
        ],
    }
