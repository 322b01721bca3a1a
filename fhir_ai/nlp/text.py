"""The text of a DocumentReference or DiagnosticReport: attachments decoded, checked and stripped.

Every failure raises a :mod:`fhir_ai.errors` error with a message fit for an
OperationOutcome or a Task's status reason: empty text, text over the size limit, a binary
or unsupported attachment, invalid base64, an unknown character set, a missing Binary.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable
from typing import Any

from fhir_ai.errors import InvalidResource, NotFound, PayloadTooLarge, UnsupportedMediaType
from fhir_ai.nlp.html import html_to_text

FetchBinary = Callable[[str], bytes | None]
PLAIN = "text/plain"
MARKUP = frozenset({"text/html", "application/xhtml+xml"})
SUPPORTED = frozenset({PLAIN, *MARKUP})
_META_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip


def media_type(content_type: str | None) -> tuple[str | None, str | None]:
    """``(type, charset)`` of a content type such as ``text/plain; charset=utf-8``."""
    if not content_type:
        return None, None
    kind, *params = (part.strip() for part in content_type.split(";"))
    charset = next(
        (
            p.split("=", 1)[1].strip().strip("\"'")
            for p in params
            if p.lower().startswith("charset=")
        ),
        None,
    )
    return kind.lower(), charset


def decode_text(data: bytes, content_type: str | None, max_bytes: int) -> str:
    """Checked, decoded and (for markup) stripped text of an attachment's bytes."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"document text is {len(data)} bytes; the limit is {max_bytes}")
    kind, charset = media_type(content_type)
    if kind is not None and kind not in SUPPORTED:
        raise UnsupportedMediaType(
            f"attachment content type {kind} is not text; supported: {', '.join(sorted(SUPPORTED))}"
        )
    if kind in MARKUP and charset is None:
        declared = _META_CHARSET.search(data[:2048])
        charset = declared.group(1).decode("ascii") if declared else None
    text = _decode(data, charset)
    if "\x00" in text or _control_ratio(text) > 0.05:
        raise UnsupportedMediaType("attachment content is binary, not text")
    return html_to_text(text) if kind in MARKUP else text


def _decode(data: bytes, charset: str | None) -> str:
    if charset:
        try:
            codec = codecs.lookup(charset).name
        except LookupError as error:
            raise UnsupportedMediaType(f"unknown character set {charset!r}") from error
        try:
            return data.decode(codec)
        except UnicodeDecodeError as error:
            raise InvalidResource(f"attachment is not valid {charset}: {error.reason}") from error
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # the usual legacy encoding of notes


def _control_ratio(text: str) -> float:
    sample = text[:4096]
    if not sample:
        return 0.0
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    return controls / len(sample)


def attachment_text(attachment: dict[str, Any], fetch_binary: FetchBinary, max_bytes: int) -> str:
    """The text of one Attachment (inline ``data`` or ``url`` to a Binary)."""
    content_type = attachment.get("contentType")
    if attachment.get("data") is not None:
        data = _base64(attachment["data"], max_bytes)
    elif attachment.get("url"):
        fetched = fetch_binary(str(attachment["url"]))
        if fetched is None:
            raise NotFound(f"attachment url {attachment['url']} could not be read")
        data = fetched
    else:
        raise InvalidResource("attachment has neither data nor url")
    return decode_text(data, content_type, max_bytes)


def _base64(value: Any, max_bytes: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidResource("attachment data must be a base64 string")
    if len(value) > (max_bytes + 2) * 4 // 3 + 4:
        raise PayloadTooLarge(f"attachment data exceeds the limit of {max_bytes} bytes")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidResource(f"attachment data is not valid base64: {error}") from error


def pick_attachment(attachments: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one rendition to read: plain text first, then HTML/XHTML, then one of no type."""

    def rank(attachment: dict[str, Any]) -> int:
        kind = media_type(attachment.get("contentType"))[0]
        return {PLAIN: 0, None: 2}.get(kind, 1 if kind in MARKUP else 3)

    ranked = sorted(attachments, key=rank)
    return ranked[0] if ranked and rank(ranked[0]) < 3 else None


def resource_text(resource: dict[str, Any], fetch_binary: FetchBinary, max_bytes: int) -> str:
    """The text to analyse of a DocumentReference or a DiagnosticReport."""
    kind = resource.get("resourceType")
    if kind == "DocumentReference":
        attachments = [c.get("attachment") or {} for c in resource.get("content") or []]
    elif kind == "DiagnosticReport":
        attachments = list(resource.get("presentedForm") or [])
    else:
        raise InvalidResource(f"cannot extract text from a {kind}")
    parts = []
    chosen = pick_attachment(attachments)
    if chosen is None and attachments:
        types = sorted({str(a.get("contentType")) for a in attachments})
        raise UnsupportedMediaType(f"no text attachment (content types: {', '.join(types)})")
    if chosen is not None:
        parts.append(attachment_text(chosen, fetch_binary, max_bytes))
    conclusion = resource.get("conclusion") if kind == "DiagnosticReport" else None
    if isinstance(conclusion, str) and conclusion.strip() and conclusion not in "".join(parts):
        parts.append(f"IMPRESSION: {conclusion.strip()}")
    return checked_text("\n\n".join(parts), max_bytes)


def checked_text(text: str, max_bytes: int) -> str:
    """``text`` if it is not blank and not over the limit (UTF-8 bytes)."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise PayloadTooLarge(f"document text is {size} bytes; the limit is {max_bytes}")
    if not text.strip():
        raise InvalidResource("the document has no text to analyse")
    return text
