"""Model routing rules as data."""

from __future__ import annotations

import pytest

from fhir_ai.imaging.routing import ModelRouter, body_site, patient_age_years
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


@pytest.mark.parametrize(
    ("age", "birth", "study", "years"),
    [
        ("062Y", None, None, 62.0),
        ("018M", "19000101", "20240101", 1.5),  # Patient's Age wins over the dates
        ("006W", None, None, 6 * 7 / 365.25),
        ("010D", None, None, 10 / 365.25),
        (None, "20190415", "20240415", 5.0),
        ("", "19400305", "20040826", (64 * 365.25 + 174) / 365.25),
        ("62", None, None, 62.0),  # years without a unit, as the RSNA sample has it
        ("62 years", None, None, None),
        (None, "20240416", "20240415", None),  # born after the study
        (None, "2019041", "20240415", None),
        (None, "20191341", "20240415", None),
        (None, None, None, None),
    ],
)
def test_patient_age_at_the_study(
    age: str | None, birth: str | None, study: str | None, years: float | None
) -> None:
    found = patient_age_years(age, birth, study)
    assert found == pytest.approx(years, abs=0.01) if years is not None else found is None


def test_a_patient_outside_the_training_population_gets_a_caution(router: ModelRouter) -> None:
    adult = router.population_caution("pneumonia-cxr", 62.0)
    assert adult is not None
    assert "(62 years) is outside the population pneumonia-cxr was trained on" in adult
    assert "children" in adult and "may not apply" in adult
    assert router.population_caution("pneumonia-cxr", 5.0) is None
    assert router.population_caution("pneumonia-cxr", 17.9) is None  # still 17
    assert router.population_caution("pneumonia-cxr", None) is None  # unknown: no guess
    infant = router.population_caution("breast-us", 0.5)
    assert infant is not None and "(6 months)" in infant
    assert router.population_caution("breast-us", 40.0) is None
    assert router.population_caution("no-such-model", 40.0) is None
