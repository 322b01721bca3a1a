"""Data in card details is escaped."""

from fhir_ai.recommend.markdown import escape


def test_escape_neutralises_markup_and_html() -> None:
    assert escape("**bold** [link](http://x) <script>") == (
        "\\*\\*bold\\*\\* \\[link\\](http://x) \\<script\\>"
    )
    assert escape("a |table| b\n\nnew paragraph") == "a \\|table\\| b new paragraph"
    assert escape("pneumonia-cxr 1.0.0") == "pneumonia-cxr 1.0.0"
