"""fhir-ai: a clinical AI plugin server (CDS Hooks, FHIR R4, DICOMweb, Celery workers)."""

__version__ = "0.1.0"
