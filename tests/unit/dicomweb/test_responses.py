"""STOW-RS response bodies: ErrorComment stays within LO's 64 characters, and the whole
reason goes in a Warning header field."""

from __future__ import annotations

from fhir_ai.dicomweb.ingest import InstanceOutcome, StowResult
from fhir_ai.dicomweb.responses import ERROR_COMMENT, reason_warnings, stow_response

LONG = (
    "The pixel data cannot be decoded: the JPEG 2000 codestream ends before its last tile "
    'part ("EOC" marker missing)'
)


def _refused(message: str, uid: str | None = "1.2.3.4") -> InstanceOutcome:
    return InstanceOutcome("1.2.840.10008.5.1.4.1.1.1", uid, "1.2.3", failure_reason=0xC000,
                           message=message)  # fmt: skip


def test_a_long_reason_is_cut_in_error_comment_and_whole_in_a_warning() -> None:
    result = StowResult([_refused(LONG), _refused("Not a DICOM file", uid=None)])
    failed = stow_response(result, "https://ai.example/dicomweb", None)["00081198"]["Value"]
    comment = failed[0][ERROR_COMMENT]["Value"][0]
    assert len(comment) <= 64 and comment.endswith("...")
    assert LONG.startswith(comment.removesuffix("..."))
    assert failed[1][ERROR_COMMENT]["Value"] == ["Not a DICOM file"]
    whole, short = reason_warnings(result)
    assert whole.startswith('299 fhir-ai "1.2.3.4: The pixel data cannot be decoded')
    assert "('EOC' marker missing)\"" in whole and whole.count('"') == 2
    assert short == '299 fhir-ai "Not a DICOM file"'


def test_stored_instances_without_warnings_add_no_warning_fields() -> None:
    stored = InstanceOutcome("1.2.840.10008.5.1.4.1.1.1", "1.2.3.4", "1.2.3", "1.2.3.1")
    assert reason_warnings(StowResult([stored])) == []
