"""DICOMweb (PS3.18): STOW-RS, WADO-RS and QIDO-RS under ``/dicomweb``."""
