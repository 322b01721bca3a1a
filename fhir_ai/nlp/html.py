"""Plain text from HTML and XHTML, safely: no script, style or other non-content element survives.

Uses the standard library's tolerant parser (no network, no entity expansion beyond HTML's
named and numeric character references); block elements become line breaks so that sentence
and section splitting still see the document's structure.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset(
    {"script", "style", "head", "title", "noscript", "template", "iframe", "object", "embed",
     "svg", "math", "canvas", "select", "button"}
)  # fmt: skip
_BLOCKS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
     "section", "article", "header", "footer", "blockquote", "pre", "hr", "dt", "dd", "dl",
     "td", "th", "caption", "thead", "tbody"}
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = tag.lower().rsplit(":", 1)[-1]
        if name in _SKIPPED:
            self.skipping += 1
        elif name in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower().rsplit(":", 1)[-1] in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        name = tag.lower().rsplit(":", 1)[-1]
        if name in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif name in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML or XHTML document, with block elements as line breaks."""
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    text = _SPACES.sub(" ", "".join(collector.parts))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
