"""Chest X-ray report labels for the 14 ChestX-ray14 findings, from concept mentions (no spaCy).

Each finding is ``positive``, ``uncertain``, ``negative`` or ``absent`` (not mentioned), the
strongest over its mentions (positive > uncertain > negative). A mention in the indication,
comparison or technique section does not count, nor one about a relative or a hypothetical.
A historical mention ("history of pneumonia") counts as negative, as NegBio reads it. A
mention whose only hedge is being one of alternatives ("atelectasis versus scarring",
:attr:`Mention.differential`) counts as positive: NegBio's uncertainty patterns have no
"versus", and the OpenI MeSH coding behind its gold labels codes each alternative.

``normal`` is ``positive`` when no finding is positive or uncertain, else ``negative``.

The binary mapping (:func:`binary_labels`): only positive is 1; uncertain, negative and absent
are 0. NegBio's OpenI gold labels follow the reports' MeSH coding, where hedged findings
("may represent atelectasis") are not coded: on the 3,080 development reports counting
uncertain as 0 gives the higher micro-F1 (``bench/openi_f1.py`` prints both mappings).
The binary labels follow the NegBio OpenI label definitions, derived from the reports' MeSH
headings: Hernia is 0 there by definition, because the only hernia headings of the reports
("Hernia, Hiatal", "Hernia, Diaphragmatic") are mapped to no label (no gold Hernia is 1 in
the 3,080 development reports, though 39 are coded "Hernia, Hiatal"). The four-valued labels
keep hiatal hernia under Hernia, as ChestX-ray14 does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fhir_ai.nlp.mentions import Mention
from fhir_ai.nlp.terminology import Terminology

FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
IGNORED_SECTIONS = frozenset({"indication", "comparison", "technique", "reason_for_examination"})
_RANK = {"absent": 0, "negative": 1, "uncertain": 2, "positive": 3}
POSITIVE_VALUES = frozenset({"positive", "uncertain"})
BINARY_POSITIVE = frozenset({"positive"})
NEGBIO_UNLABELLED = frozenset({"Hernia"})


def mention_status(mention: Mention) -> str | None:
    """The label one mention supports, or ``None`` when it says nothing about this patient now."""
    if mention.section in IGNORED_SECTIONS or mention.family or mention.hypothetical:
        return None
    if mention.negated or mention.historical:
        return "negative"
    hedged = mention.uncertain and not mention.differential
    return "uncertain" if hedged else "positive"


def label_report(mentions: Iterable[Mention], terminology: Terminology) -> dict[str, str]:
    """The 14 findings' labels, plus ``normal``."""
    labels = dict.fromkeys(FINDINGS, "absent")
    for mention in mentions:
        concept = terminology.by_id.get(mention.concept)
        status = mention_status(mention)
        if concept is None or concept.cxr not in labels or status is None:
            continue
        if _RANK[status] > _RANK[labels[concept.cxr]]:
            labels[concept.cxr] = status
    normal = not any(value in POSITIVE_VALUES for value in labels.values())
    return {**labels, "normal": "positive" if normal else "negative"}


def binary_labels(labels: Mapping[str, str]) -> dict[str, int]:
    """0/1 labels: only positive is 1 (``normal`` too); Hernia is 0 (see the module doc)."""
    return {
        name: int(value in BINARY_POSITIVE and name not in NEGBIO_UNLABELLED)
        for name, value in labels.items()
    }
