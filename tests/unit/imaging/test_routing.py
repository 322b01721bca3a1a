"""Model routing rules as data."""

from __future__ import annotations

import pytest

from fhir_ai.imaging.routing import ModelRouter, body_site
from fhir_ai.settings import Settings

TERMINOLOGY = Settings().terminology_path()
CR = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture(scope="module")
def router() -> ModelRouter:
    return ModelRouter.load(TERMINOLOGY)


@pytest.mark.parametrize(
    ("modality", "body_part", "view", "model"),
    [
        ("CR", "CHEST", "PA", "pneumonia-cxr"),
        ("DX", "chest", "AP", "pneumonia-cxr"),
        ("DX", "THORAX", None, "pneumonia-cxr"),
        ("CR", "CHEST", "LL", None),  # lateral: the model saw frontal views only
        ("CR", "HIP", "AP", None),
        ("CR", None, "PA", None),  # unknown body part: not guessed
        ("US", "BREAST", None, "breast-us"),
        ("US", "ABDOMEN", None, None),
        ("CT", "CHEST", None, None),
    ],
)
def test_routes(
    router: ModelRouter, modality: str, body_part: str | None, view: str | None, model: str | None
) -> None:
    route = router.route(CR, modality, body_part, view)
    assert route.model == model
    assert route.reason


@pytest.mark.parametrize(
    ("sop_class", "word"),
    [
        ("1.2.840.10008.5.1.4.1.1.88.33", "structured report"),
        ("1.2.840.10008.5.1.4.1.1.66.4", "Segmentation"),
        ("1.2.840.10008.5.1.4.1.1.9.1.1", "ECG"),
        ("1.2.840.10008.5.1.4.1.1.481.5", "RT Plan"),
    ],
)
def test_non_image_objects_are_stored_not_analysed(
    router: ModelRouter, sop_class: str, word: str
) -> None:
    route = router.route(sop_class, "CR", "CHEST", "PA")
    assert route.model is None and word in route.reason


def test_report_codes_and_body_sites(router: ModelRouter) -> None:
    assert router.report_code("pneumonia-cxr")["coding"][0]["system"] == "http://loinc.org"
    assert body_site(TERMINOLOGY, "chest") == ("51185008", "Thoracic structure")
    assert body_site(TERMINOLOGY, "NOSE") is None
