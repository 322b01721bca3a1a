"""ConText run only over the sentences that hold a target (same result, a fraction of the time).

medspaCy's ``ConText`` runs its rule matcher over the whole document; on long notes about 90%
of its time goes to spaCy's ``Matcher`` on sentences without any target. A modifier's scope
never leaves its sentence, so matching only the sentences that contain a target gives the same
modifiers for every target. This component wraps a medspaCy ``ConText`` (its rules, scopes,
pruning and attribute mapping) and feeds it only those sentences.

No ``from __future__ import annotations`` here: spaCy builds each factory's config schema from
its evaluated type annotations.
"""

from collections.abc import Sequence
from typing import Any

from medspacy.context import ConText, ConTextRule
from medspacy.context.context import DEFAULT_ATTRIBUTES
from medspacy.context.context_graph import ConTextGraph
from medspacy.context.context_modifier import ConTextModifier
from spacy.language import Language
from spacy.tokens import Doc, Span

CONTEXT = "fhir_ai_context"
DIFFERENTIAL = "DIFFERENTIAL"
SPAN_ATTRS: dict[str, dict[str, Any]] = {
    **DEFAULT_ATTRIBUTES,
    DIFFERENTIAL: {"is_differential": True},
}

if not Span.has_extension("is_differential"):
    Span.set_extension("is_differential", default=False)


class TargetSentenceContext:
    """medspaCy ConText, matched only over the sentences that contain a target."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.context = ConText(nlp, name=name, rules=None, span_attrs=SPAN_ATTRS)
        # medspaCy keeps its matcher private; 1.3.1 is pinned (pyproject) and tested here.
        self.matcher: Any = self.context._ConText__matcher
        self.vocab = nlp.vocab

    def add(self, rules: list[ConTextRule]) -> None:
        """Add ConText rules (as ``ConText.add``)."""
        self.context.add(rules)

    def __call__(self, doc: Doc) -> Doc:
        targets = doc.ents
        # medspaCy passes prune_on_target_overlap here too (ConText.__call__, 1.3.1).
        graph = ConTextGraph(prune_on_modifier_overlap=self.context.prune_on_target_overlap)
        graph.targets = targets
        graph.modifiers = self._modifiers(doc, _sentences(targets))
        graph.update_scopes()
        graph.apply_modifiers()
        for target, modifier in graph.edges:
            target._.modifiers += (modifier,)
        if self.context.context_attributes_mapping:
            self.context.set_context_attributes(graph.edges)
        doc._.context_graph = graph
        return doc

    def _modifiers(self, doc: Doc, sentences: list[Span]) -> list[ConTextModifier]:
        modifiers = []
        for sentence in sentences:
            offset = sentence.start
            for match_id, start, end in self.matcher(sentence.as_doc()):
                rule = self.matcher.rule_map[self.vocab[match_id].text]
                modifiers.append(
                    ConTextModifier(
                        rule, offset + start, offset + end, doc, max_scope=self.context.max_scope
                    )
                )
        return modifiers


def _sentences(targets: Sequence[Span]) -> list[Span]:
    """The distinct sentences of the targets, in document order."""
    by_start: dict[int, Span] = {}
    for target in targets:
        sentence = target.sent
        by_start.setdefault(sentence.start, sentence)
    return [by_start[start] for start in sorted(by_start)]


@Language.factory(CONTEXT)
def make_context(nlp: Language, name: str) -> TargetSentenceContext:
    """spaCy factory of :class:`TargetSentenceContext` (rules added with ``add``)."""
    return TargetSentenceContext(nlp, name)
