"""The terminology data in ``terminology/``: concepts with their target rules, ConText fixes.

Pure data loading (no spaCy). The files are read once per process and per directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fhir_ai.errors import ConfigurationError

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept: its codes and the phrases (synonyms, abbreviations, misspellings) naming it."""

    id: str
    display: str
    group: str
    snomed: str | None
    icd10cm: str | None
    cxr: str | None
    terms: tuple[str, ...]
    patterns: tuple[tuple[dict[str, Any], ...], ...]
    exclude: tuple[str, ...]

    def codings(self, system_url: str) -> list[dict[str, str]]:
        """FHIR codings: SNOMED CT, ICD-10-CM, then our own code (``system_url``)."""
        codings = []
        if self.snomed:
            codings.append({"system": SNOMED, "code": self.snomed, "display": self.display})
        if self.icd10cm:
            codings.append({"system": ICD10CM, "code": self.icd10cm, "display": self.display})
        codings.append({"system": system_url, "code": self.id, "display": self.display})
        return codings


@dataclass(frozen=True, slots=True)
class ContextFix:
    """One documented change to medspaCy's default ConText rules, with its test sentences."""

    id: str
    reason: str
    remove: tuple[str, ...]
    add: tuple[dict[str, Any], ...]
    examples: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True, eq=False)
class Terminology:
    """Everything the pipeline reads from the terminology folder."""

    version: str
    concepts: tuple[Concept, ...]
    context_fixes: tuple[ContextFix, ...]
    section_rules: tuple[dict[str, str], ...]
    section_attributes: Mapping[str, Mapping[str, bool]]
    code_system: Mapping[str, Any]
    by_id: Mapping[str, Concept]

    def concept(self, concept_id: str) -> Concept:
        """The concept with this id (KeyError if unknown)."""
        return self.by_id[concept_id]


def default_terminology_dir() -> Path:
    """The ``terminology`` package data folder installed with fhir-ai."""
    return Path(str(resources.files("terminology")))


def pipeline_version(terminology: Terminology) -> str:
    """``fhir-ai <version>; terminology <version>; medspacy <version>`` (no spaCy import).

    The Device version of extraction results and the pipeline part of extraction job keys:
    a new code, terminology or medspaCy version gives new results, never duplicates.
    """
    return (
        f"fhir-ai {version('fhir-ai')}; terminology {terminology.version}; "
        f"medspacy {version('medspacy')}"
    )


def load_terminology(directory: Path | None = None) -> Terminology:
    """Read and check the terminology folder (default: the installed one), cached per folder."""
    return _load_terminology((directory or default_terminology_dir()).resolve())


@lru_cache(maxsize=4)
def _load_terminology(folder: Path) -> Terminology:
    concepts = _read(folder / "concepts.json")
    context = _read(folder / "context_rules.json")
    sections = _read(folder / "section_rules.json")
    parsed = tuple(_concept(c) for c in concepts["concepts"])
    return Terminology(
        version=str(concepts["version"]),
        concepts=parsed,
        context_fixes=tuple(_fix(f) for f in context["fixes"]),
        section_rules=tuple(sections["section_rules"]),
        section_attributes=MappingProxyType(sections["section_attributes"]),
        code_system=MappingProxyType(_read(folder / "CodeSystem-nlp.json")),
        by_id=MappingProxyType({c.id: c for c in parsed}),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read terminology file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigurationError(f"terminology file {path} must hold a JSON object")
    return data


def _concept(raw: dict[str, Any]) -> Concept:
    return Concept(
        id=raw["id"],
        display=raw["display"],
        group=raw.get("group", "problem"),
        snomed=raw.get("snomed"),
        icd10cm=raw.get("icd10cm"),
        cxr=raw.get("cxr"),
        terms=tuple(dict.fromkeys(t.lower() for t in raw["terms"])),
        patterns=tuple(tuple(p) for p in raw.get("patterns", ())),
        exclude=tuple(e.lower() for e in raw.get("exclude", ())),
    )


def _fix(raw: dict[str, Any]) -> ContextFix:
    return ContextFix(
        id=raw["id"],
        reason=raw["reason"],
        remove=tuple(raw.get("remove", ())),
        add=tuple(raw.get("add", ())),
        examples=tuple(raw.get("examples", ())),
    )
