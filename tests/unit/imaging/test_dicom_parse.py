"""Every real DICOM file of the shared set: accepted with its metadata or refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ai.errors import DicomRejected
from fhir_ai.imaging import dicom_status
from fhir_ai.imaging.dicom_parse import parse_instance

#: The reason each broken file must get (a fragment of it) and its DICOM status.
BROKEN = {
    "966.dcm": ("cannot be decoded", dicom_status.CANNOT_UNDERSTAND),
    "ExplVR_LitEndNoMeta.dcm": ("Not a DICOM PS3.10 file", dicom_status.CANNOT_UNDERSTAND),
    "JPEG-lossy.dcm": ("cannot be decoded", dicom_status.CANNOT_UNDERSTAND),
    "JPEG2000-embedded-sequence-delimiter.dcm": ("cannot be decoded", 0xC000),
    "MR_truncated.dcm": ("shorter than", dicom_status.CANNOT_UNDERSTAND),
    "OT-PAL-8-face.dcm": ("Not a DICOM PS3.10 file", dicom_status.CANNOT_UNDERSTAND),
    "RG2_JPLY.dcm": ("cannot be decoded", dicom_status.CANNOT_UNDERSTAND),
    "UN_sequence.dcm": ("SOPClassUID is missing", dicom_status.DOES_NOT_MATCH_SOP_CLASS),
    "badVR.dcm": ("not a valid number", dicom_status.CANNOT_UNDERSTAND),
    "bad_sequence.dcm": ("not a valid DICOM UID", dicom_status.DOES_NOT_MATCH_SOP_CLASS),
    "emri_small_jpeg_2k_lossless_too_short.dcm": ("truncated", 0xC000),
    "meta_missing_tsyntax.dcm": ("no Transfer Syntax UID", dicom_status.CANNOT_UNDERSTAND),
    "nested_priv_SQ.dcm": ("SOPClassUID is missing", dicom_status.DOES_NOT_MATCH_SOP_CLASS),
    "no_meta.dcm": ("Not a DICOM PS3.10 file", dicom_status.CANNOT_UNDERSTAND),
    "rtplan_truncated.dcm": ("ApprovalStatus", dicom_status.DOES_NOT_MATCH_SOP_CLASS),
    "zipMR.gz": ("gzip", dicom_status.CANNOT_UNDERSTAND),
}
#: Broken files the decoder tolerates: stored with a warning naming the non-conformance.
TOLERATED = {
    "GDCMJ2K_TextGBR.dcm": "JP2 file header",
    "J2K_pixelrep_mismatch.dcm": "PixelRepresentation disagrees",
}


def test_every_broken_file_is_covered(shared_data: Path) -> None:
    names = {p.name for p in (shared_data / "dicom" / "broken").iterdir()}
    assert names == set(BROKEN) | set(TOLERATED)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_is_refused_with_its_reason(shared_data: Path, name: str) -> None:
    fragment, status = BROKEN[name]
    with pytest.raises(DicomRejected) as raised:
        parse_instance((shared_data / "dicom" / "broken" / name).read_bytes())
    assert fragment in raised.value.message
    assert raised.value.failure_reason == status


@pytest.mark.parametrize("name", sorted(TOLERATED))
def test_tolerated_file_is_accepted_with_a_warning(shared_data: Path, name: str) -> None:
    parsed = parse_instance((shared_data / "dicom" / "broken" / name).read_bytes())
    assert any(TOLERATED[name] in w for w in parsed.warnings)


@pytest.mark.parametrize("folder", ["chest_radiographs", "transfer_syntaxes", "non_image"])
def test_real_files_parse_with_their_uids(shared_data: Path, folder: str) -> None:
    for path in sorted((shared_data / "dicom" / folder).iterdir()):
        try:
            parsed = parse_instance(path.read_bytes())
        except DicomRejected as error:  # three samples lack their StudyInstanceUID
            assert "StudyInstanceUID is missing" in error.message, path.name
            continue
        assert parsed.sop_instance_uid and parsed.study_instance_uid, path.name
        assert parsed.metadata["00080018"]["Value"] == [parsed.sop_instance_uid]
        assert "7FE00010" not in parsed.metadata  # no pixel data in the metadata
        assert parsed.metadata["00020010"]["Value"] == [parsed.transfer_syntax_uid]


def test_chest_radiograph_metadata(shared_data: Path) -> None:
    data = (shared_data / "dicom" / "chest_radiographs" / "RG1_UNCR.dcm").read_bytes()
    parsed = parse_instance(data)
    assert (parsed.modality, parsed.body_part, parsed.view) == ("CR", "CHEST", "PA")
    assert parsed.is_image and parsed.warnings == ()


def test_non_image_objects_are_not_images(shared_data: Path) -> None:
    for name in ("test-SR.dcm", "waveform_ecg.dcm", "rtplan.dcm"):
        parsed = parse_instance((shared_data / "dicom" / "non_image" / name).read_bytes())
        assert not parsed.is_image, name


def test_random_bytes_are_refused() -> None:
    with pytest.raises(DicomRejected, match=r"Not a DICOM PS3\.10 file"):
        parse_instance(b"\x00" * 200 + b"not dicom at all")
