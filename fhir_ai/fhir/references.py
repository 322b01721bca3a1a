"""Relative references: ``Type/id`` and ``Type/id/_history/version``."""

from __future__ import annotations

from typing import NamedTuple


class Reference(NamedTuple):
    """The parts of a relative reference (``version`` empty when it has none)."""

    resource_type: str
    id: str
    version: str


def split_reference(reference: str) -> Reference:
    """``Type/id[/_history/version]`` split into its parts."""
    parts = reference.strip("/").split("/")
    version = parts[3] if len(parts) >= 4 and parts[2] == "_history" else ""
    return Reference(parts[0], parts[1] if len(parts) > 1 else "", version)
