"""The clinical NLP pipeline: built once per process, then text in, mentions out.

Components: medspaCy's tokenizer, :mod:`fhir_ai.nlp.segmentation` (instead of PyRuSH), the
TargetMatcher with the terminology's rules, a postprocessor that drops excluded contexts
("body mass index" is no lung mass), the Sectionizer and ConText with the audited rules.
Workers and the CLI import this module; the web process never does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import spacy
from loguru import logger as loguru_logger
from medspacy.custom_tokenizer import create_medspacy_tokenizer
from spacy.language import Language
from spacy.tokens import Doc, Span

from fhir_ai.nlp import segmentation
from fhir_ai.nlp.components import POSTPROCESS
from fhir_ai.nlp.context import CONTEXT
from fhir_ai.nlp.mentions import Mention, size_in_mm
from fhir_ai.nlp.rules import context_rules, section_rules, target_rules
from fhir_ai.nlp.terminology import (
    Terminology,
    default_terminology_dir,
    load_terminology,
    pipeline_version,
)

PIPELINE_NAME = "fhir-ai clinical NLP"
QUERY_LABEL = "QUERY"
SIZED = frozenset({"pulmonary_nodule", "lung_mass"})
BATCH_SIZE = 32


@dataclass(frozen=True, eq=False)
class ClinicalPipeline:
    """A built pipeline; one per process (not thread-safe: use one per worker process)."""

    nlp: Language
    terminology: Terminology
    version: str

    def mentions(self, text: str) -> list[Mention]:
        """The concept mentions in ``text``."""
        return _mentions(self.nlp(text))

    def mentions_many(self, texts: Iterable[str]) -> Iterator[list[Mention]]:
        """The mentions of each text, in order (batched through ``nlp.pipe``)."""
        for doc in self.nlp.pipe(texts, batch_size=BATCH_SIZE):
            yield _mentions(doc)

    def assert_phrase(self, text: str, phrase: str) -> Mention | None:
        """The ConText assertion of ``phrase`` where it first occurs in ``text`` (or ``None``).

        The phrase need not be known to the terminology: the TargetMatcher is replaced by a
        case-, spacing- and plural-insensitive search for the phrase itself.
        """
        doc = self.nlp.make_doc(text)
        span = find_phrase(doc, phrase)
        if span is None:
            return None
        for name, component in self.nlp.pipeline:
            if name in ("medspacy_target_matcher", POSTPROCESS):
                doc.ents = [span]
            else:
                doc = component(doc)
        found = [e for e in doc.ents if e.label_ == QUERY_LABEL]
        return _mention(found[0]) if found else None


def find_phrase(doc: Doc, phrase: str) -> Span | None:
    """The first case-, spacing- and plural-insensitive occurrence of ``phrase`` as a span."""
    words = re.findall(r"\w+", phrase)
    if not words:
        return None
    body = r"[\W_]{1,3}".join(re.escape(w) for w in words)
    pattern = re.compile(rf"(?<!\w){body}(?:e?s)?(?!\w)", re.IGNORECASE)
    match = pattern.search(doc.text)
    if match is None:
        return None
    return doc.char_span(match.start(), match.end(), QUERY_LABEL, alignment_mode="expand")


def _mentions(doc: Doc) -> list[Mention]:
    return [_mention(ent) for ent in doc.ents]


def _mention(ent: Span) -> Mention:
    sentence = ent.sent
    size = None
    if ent.label_ in SIZED:
        offset = sentence.start_char
        size = size_in_mm(sentence.text, ent.start_char - offset, ent.end_char - offset)
    return Mention(
        concept=ent.label_,
        text=ent.text,
        start=ent.start_char,
        end=ent.end_char,
        sentence=sentence.text.strip(),
        sentence_start=sentence.start_char,
        section=ent._.section_category,
        negated=bool(ent._.is_negated),
        uncertain=bool(ent._.is_uncertain or ent._.is_differential),
        historical=bool(ent._.is_historical),
        hypothetical=bool(ent._.is_hypothetical),
        family=bool(ent._.is_family),
        size_mm=size,
        differential=bool(ent._.is_differential and not ent._.is_uncertain),
    )


def build_nlp(terminology: Terminology) -> Language:
    """Assemble the spaCy pipeline for ``terminology`` (no model download: blank English)."""
    loguru_logger.disable("PyRuSH")
    nlp = spacy.blank("en")
    nlp.tokenizer = create_medspacy_tokenizer(nlp)
    nlp.add_pipe(segmentation.NAME)
    matcher: Any = nlp.add_pipe("medspacy_target_matcher")
    matcher.add(target_rules(terminology))
    exclusions = {c.id: list(c.exclude) for c in terminology.concepts if c.exclude}
    nlp.add_pipe(POSTPROCESS, config={"exclusions": exclusions})
    sectionizer: Any = nlp.add_pipe(
        "medspacy_sectionizer",
        config={"rules": None, "span_attrs": _section_attrs(terminology)},
    )
    sectionizer.add(section_rules(terminology))
    context: Any = nlp.add_pipe(CONTEXT)
    context.add(context_rules(terminology))
    return nlp


def _section_attrs(terminology: Terminology) -> dict[str, dict[str, bool]]:
    return {k: dict(v) for k, v in terminology.section_attributes.items()}


def load_pipeline(terminology_dir: Path | None = None) -> ClinicalPipeline:
    """The process's pipeline for a terminology folder (built on first use, then cached)."""
    return _load_pipeline((terminology_dir or default_terminology_dir()).resolve())


@lru_cache(maxsize=2)
def _load_pipeline(terminology_dir: Path) -> ClinicalPipeline:
    terminology = load_terminology(terminology_dir)
    return ClinicalPipeline(build_nlp(terminology), terminology, pipeline_version(terminology))
