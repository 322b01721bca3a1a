"""spaCy components of the pipeline that take configuration.

No ``from __future__ import annotations`` here: spaCy builds each factory's config schema from
its evaluated type annotations.
"""

from spacy.language import Language
from spacy.tokens import Doc, Span

POSTPROCESS = "fhir_ai_postprocess"


class ExclusionFilter:
    """Postprocessing: drop mentions whose context is an excluded phrase of their concept."""

    def __init__(self, exclusions: dict[str, list[str]]) -> None:
        self.exclusions = {label: tuple(p.lower() for p in v) for label, v in exclusions.items()}

    def __call__(self, doc: Doc) -> Doc:
        if doc.ents:
            lowered = doc.text.lower()
            doc.ents = [e for e in doc.ents if not self._excluded(e, lowered)]
        return doc

    def _excluded(self, ent: Span, lowered: str) -> bool:
        term = ent.text.lower()
        for phrase in self.exclusions.get(ent.label_, ()):
            offset = phrase.find(term)
            begin = ent.start_char - offset
            if offset >= 0 and begin >= 0 and lowered[begin : begin + len(phrase)] == phrase:
                return True
        return False


@Language.factory(POSTPROCESS, default_config={"exclusions": {}})
def make_exclusion_filter(
    nlp: Language, name: str, exclusions: dict[str, list[str]]
) -> ExclusionFilter:
    """spaCy factory of :class:`ExclusionFilter`."""
    return ExclusionFilter(exclusions)
