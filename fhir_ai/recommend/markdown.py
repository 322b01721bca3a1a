"""Safe Markdown for card details: data is escaped, never interpreted."""

from __future__ import annotations

import re

# Inline-significant characters; data is put mid-line (table cells, sentences), where
# block markers (#, -, +, 1.) mean nothing.
_SPECIAL = re.compile(r"([\\`*_\[\]|<>~])")


def escape(text: str) -> str:
    """Escape Markdown (and inline HTML) in ``text`` so it renders literally, on one line."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))
