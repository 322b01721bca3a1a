"""Relative references: ``Type/id`` and ``Type/id/_history/version``."""

from __future__ import annotations

import re
from typing import NamedTuple

#: A FHIR logical id (the R4 ``id`` datatype): 1 to 64 letters, digits, ``-`` and ``.``.
ID_PATTERN = r"[A-Za-z0-9\-.]{1,64}"
#: A whole string that is a logical id (``\Z``: ``$`` would also let a final newline through).
FHIR_ID = re.compile(rf"\A{ID_PATTERN}\Z")
#: A whole string that is a relative reference ``Type/id``; the type and id are its groups.
RELATIVE_REFERENCE = re.compile(rf"\A([A-Z][A-Za-z]{{1,63}})/({ID_PATTERN})\Z")


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
