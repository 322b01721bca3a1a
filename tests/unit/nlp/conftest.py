"""One NLP pipeline for the NLP tests (built once per session)."""

from __future__ import annotations

import pytest

from fhir_ai.nlp.pipeline import ClinicalPipeline, load_pipeline


@pytest.fixture(scope="session")
def pipeline() -> ClinicalPipeline:
    """The shipped pipeline with the repository's terminology."""
    return load_pipeline()
