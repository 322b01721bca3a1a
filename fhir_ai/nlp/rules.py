"""medspaCy rule objects built from the terminology data (TargetRule, ConTextRule, SectionRule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import medspacy
from medspacy.context import ConTextRule
from medspacy.ner import TargetRule
from medspacy.section_detection import SectionRule

from fhir_ai.nlp.terminology import Terminology


def medspacy_resource(name: str) -> Path:
    """A file of medspaCy's English resources (installed beside the package)."""
    return Path(medspacy.__file__).resolve().parent.parent / "resources" / "en" / name


def target_rules(terminology: Terminology) -> list[TargetRule]:
    """One TargetRule per concept phrase and token pattern; the label is the concept id."""
    rules = []
    for concept in terminology.concepts:
        rules += [TargetRule(term, concept.id) for term in concept.terms]
        rules += [
            TargetRule(f"{concept.id} pattern {i}", concept.id, pattern=list(pattern))
            for i, pattern in enumerate(concept.patterns)
        ]
    return rules


def default_context_dicts() -> list[dict[str, Any]]:
    """medspaCy's shipped English ConText rules, as dicts."""
    data = json.loads(medspacy_resource("context_rules.json").read_text(encoding="utf-8"))
    return list(data["context_rules"])


def context_rules(terminology: Terminology) -> list[ConTextRule]:
    """The shipped rules minus the removed literals, plus the added rules of every fix."""
    removed = {literal for fix in terminology.context_fixes for literal in fix.remove}
    kept = [r for r in default_context_dicts() if r["literal"] not in removed]
    added = [dict(rule) for fix in terminology.context_fixes for rule in fix.add]
    return [_context_rule(r) for r in kept + added]


def _context_rule(raw: dict[str, Any]) -> ConTextRule:
    return ConTextRule(
        literal=raw["literal"],
        category=raw["category"],
        pattern=raw.get("pattern"),
        direction=raw.get("direction", "BIDIRECTIONAL"),
        max_scope=raw.get("max_scope"),
    )


def section_rules(terminology: Terminology) -> list[SectionRule]:
    """medspaCy's shipped section titles, where ours (same lower-cased title) replace theirs."""
    ours = {r["literal"].lower(): r for r in terminology.section_rules}
    data = json.loads(medspacy_resource("section_patterns.json").read_text(encoding="utf-8"))
    theirs = [r for r in data["section_rules"] if r["literal"].lower() not in ours]
    return [
        SectionRule(literal=r["literal"], category=r["category"], pattern=r.get("pattern"))
        for r in [*theirs, *ours.values()]
    ]
