"""Imaging: DICOM ingestion and metadata (web-safe), pixel decoding and AI analysis (workers).

The web process imports only :mod:`dicom_parse`, :mod:`imaging_study` and
:mod:`routing` (pydicom and numpy); torch and MONAI load only in workers.
"""
