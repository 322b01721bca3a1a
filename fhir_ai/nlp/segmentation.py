"""A fast rule-based sentence splitter for clinical text (replaces PyRuSH, about 80% of the time).

Rules, over tokens: a sentence starts after ``.``, ``!`` or ``?`` when the next word is not
lower case (and the period does not end a title abbreviation); after a blank line; and after
a line break when the next line starts like a new statement (capital, digit, bullet) or the
previous line ended a header (``:``). A line break followed by a lower-case word is a wrapped
line and does not split. Whitespace tokens stay with the sentence before them.
"""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc, Token

_ENDS = frozenset(".!?")
_BULLETS = frozenset("-*•#")
_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "vs", "approx", "e.g", "i.e", "pt", "fig", "inc", "jr"}
)
NAME = "fhir_ai_sentences"


def _starts_statement(token: Token) -> bool:
    text = token.text
    return text[:1].isupper() or text[:1].isdigit() or text[:1] in _BULLETS or text[:1] == "["


def _starts_after_break(doc: Doc, i: int) -> bool:
    """Whether token ``i`` (not whitespace) starts a sentence, given the tokens before it."""
    token = doc[i]
    j, gap = i - 1, ""
    while j >= 0 and doc[j].is_space:
        gap = doc[j].text + gap
        j -= 1
    if j < 0:
        return True
    last = doc[j]
    newlines = (last.whitespace_ + gap).count("\n")
    if newlines >= 2:
        return True
    if set(last.text) <= _ENDS and not token.is_lower:
        return j == 0 or doc[j - 1].lower_ not in _ABBREVIATIONS
    if newlines == 1:
        return last.text == ":" or _starts_statement(token)
    return False


@Language.component(NAME)
def split_sentences(doc: Doc) -> Doc:
    """Set ``is_sent_start`` on every token."""
    for i, token in enumerate(doc):
        if i == 0:
            token.is_sent_start = True
        elif token.is_space:
            token.is_sent_start = False
        else:
            token.is_sent_start = _starts_after_break(doc, i)
    return doc
