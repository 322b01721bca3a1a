"""DICOM status codes STOW-RS reports (PS3.4 Annex B, PS3.18 10.5.3)."""

from typing import Final

PROCESSING_FAILURE: Final = 0x0110
DUPLICATE_SOP_INSTANCE: Final = 0x0111
SOP_CLASS_NOT_SUPPORTED: Final = 0x0122
OUT_OF_RESOURCES: Final = 0xA700
DOES_NOT_MATCH_SOP_CLASS: Final = 0xA900
CANNOT_UNDERSTAND: Final = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED: Final = 0xC122
#: Warning: stored, with a non-conformance noted (Coercion of Data Elements).
COERCION_OF_DATA_ELEMENTS: Final = 0xB000
