"""A concept mention found in a text, with its ConText assertion and evidence (no spaCy)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

_SIZE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:\.\d+)?)(?:\s*(?:x|by|\u00d7)\s*\d{1,3}(?:\.\d+)?){0,2}\s*"
    r"(mm|millimeters?|cm|centimeters?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Mention:
    """One mention: concept id, exact character offsets, sentence, section and ConText flags.

    ``differential`` is true when the only hedge is that the mention is one of alternatives
    ("atelectasis versus pneumonia"); ``uncertain`` is then true too.
    """

    concept: str
    text: str
    start: int
    end: int
    sentence: str
    sentence_start: int
    section: str | None
    negated: bool
    uncertain: bool
    historical: bool
    hypothetical: bool
    family: bool
    size_mm: float | None = None
    differential: bool = False

    @property
    def assertion(self) -> str:
        """``absent`` (negated), ``possible`` (hedged) or ``present``."""
        if self.negated:
            return "absent"
        return "possible" if self.uncertain else "present"

    @property
    def affirmed(self) -> bool:
        """Present for the patient now: not negated, hedged, hypothetical or a relative's."""
        return self.assertion == "present" and not (self.hypothetical or self.family)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field, plus the assertion."""
        return {**asdict(self), "assertion": self.assertion}


def size_in_mm(sentence: str, start: int, end: int) -> float | None:
    """The size written nearest to the mention ``sentence[start:end]``, in mm (largest dimension).

    "8 x 6 mm nodule" gives 8.0, "a 1.2 cm nodule" gives 12.0; no size gives ``None``.
    """
    best: tuple[int, float] | None = None
    for match in _SIZE.finditer(sentence):
        dims = [float(d) for d in re.findall(r"\d{1,3}(?:\.\d+)?", match.group(0))]
        factor = 10.0 if match.group(2).lower().startswith("c") else 1.0
        distance = start - match.end() if match.end() <= start else match.start() - end
        distance = abs(distance)
        if best is None or distance < best[0]:
            best = (distance, max(dims) * factor)
    return best[1] if best else None
