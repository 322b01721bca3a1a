"""The product's CDS services, in discovery order."""

from __future__ import annotations

from fhir_ai.cds.service import CdsService


def default_services() -> list[CdsService]:
    """The services registered when the app is built without an explicit list.

    None ship yet: the imaging and note services come with the imaging and NLP results
    they render (see the CDS Hooks issue). Discovery answers ``{"services": []}``.
    """
    return []
