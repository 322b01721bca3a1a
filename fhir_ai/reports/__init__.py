"""A clinician's view of an AI report, opened from a CDS card through a signed link."""
