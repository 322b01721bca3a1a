"""Text of documents and bad input: each a clear error from fhir_ai.errors, never a crash."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fhir_ai.errors import (
    FhirAiError,
    InvalidResource,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from fhir_ai.nlp.html import html_to_text
from fhir_ai.nlp.text import checked_text, decode_text, resource_text

LIMIT = 1_000_000


def _doc(data: bytes | str, content_type: str | None = "text/plain") -> dict[str, Any]:
    encoded = base64.b64encode(data).decode() if isinstance(data, bytes) else data
    attachment: dict[str, Any] = {"data": encoded}
    if content_type:
        attachment["contentType"] = content_type
    return {"resourceType": "DocumentReference", "id": "d", "content": [{"attachment": attachment}]}


def _text(resource: dict[str, Any], fetch: Any = lambda url: None) -> str:
    return resource_text(resource, fetch, LIMIT)


def test_html_scripts_and_styles_are_dropped() -> None:
    markup = (
        "<html><head><title>t</title><style>p{}</style><script>var a = 'pneumonia';</script>"
        "</head><body><p>No&nbsp;pneumothorax.</p><div>Mild <b>cardiomegaly</b>.<br/>End</div>"
        "<script type='text/javascript'>alert(1)</script></body></html>"
    )
    assert html_to_text(markup) == "No\xa0pneumothorax.\n\nMild cardiomegaly.\nEnd"


def test_xhtml_narrative_with_namespace() -> None:
    xhtml = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Asthma.</p><p>COPD.</p></div>'
    assert _text(_doc(xhtml.encode(), "application/xhtml+xml")) == "Asthma.\n\nCOPD."


def test_charsets_declared_sniffed_and_bom() -> None:
    assert decode_text("café".encode("latin-1"), "text/plain; charset=ISO-8859-1", LIMIT) == "café"
    assert decode_text("café".encode("cp1252"), "text/plain", LIMIT) == "café"
    assert decode_text("note".encode("utf-16"), None, LIMIT) == "note"


@pytest.mark.parametrize(
    ("resource", "error", "words"),
    [
        (_doc(b""), InvalidResource, "no text"),
        (_doc(b"   \n "), InvalidResource, "no text"),
        (_doc(b"x" * (5 * 1024 * 1024)), PayloadTooLarge, "limit"),
        (_doc(b"%PDF-1.4\x00\x01binary", "application/pdf"), UnsupportedMediaType, "no text"),
        (_doc(b"\x00\x01\x02\x03" * 100, None), UnsupportedMediaType, "binary"),
        (_doc("not base64 !!!"), InvalidResource, "base64"),
        (_doc(b"hello", "text/plain; charset=klingon-8"), UnsupportedMediaType, "character set"),
        (_doc(b"\xff\xfe\xfa", "text/plain; charset=utf-8"), InvalidResource, "not valid"),
        ({"resourceType": "DocumentReference", "id": "d", "content": [{"attachment": {}}]},
         InvalidResource, "neither"),
        ({"resourceType": "Patient", "id": "p"}, InvalidResource, "Patient"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(resource: dict[str, Any], error: type, words: str) -> None:
    with pytest.raises(error) as raised:
        _text(resource)
    assert isinstance(raised.value, FhirAiError)
    assert words in raised.value.message


def test_binary_url_is_fetched_and_missing_binary_is_not_found() -> None:
    attachment = {"contentType": "text/plain", "url": "Binary/1"}
    doc = {"resourceType": "DocumentReference", "id": "d", "content": [{"attachment": attachment}]}
    assert _text(doc, lambda url: b"Asthma." if url == "Binary/1" else None) == "Asthma."
    with pytest.raises(NotFound):
        _text(doc)


def test_report_presented_form_and_conclusion() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r",
        "presentedForm": [
            {"contentType": "text/html", "data": base64.b64encode(b"<p>Other</p>").decode()},
            {"contentType": "text/plain", "data": base64.b64encode(b"FINDINGS: Clear.").decode()},
        ],
        "conclusion": "No pneumonia.",
    }
    assert _text(report) == "FINDINGS: Clear.\n\nIMPRESSION: No pneumonia."
    assert _text({"resourceType": "DiagnosticReport", "id": "r", "conclusion": "Ok."}) == (
        "IMPRESSION: Ok."
    )


def test_plain_text_limit_counts_utf8_bytes() -> None:
    with pytest.raises(PayloadTooLarge):
        checked_text("é" * 600, 1000)
    assert checked_text("é" * 400, 1000) == "é" * 400
