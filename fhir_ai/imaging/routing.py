"""Which model analyses which image: rules as data (``terminology/imaging/model-routing.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fhir_ai.errors import ConfigurationError

ROUTING_FILE = Path("imaging") / "model-routing.json"
BODY_PARTS_FILE = Path("imaging") / "body-parts.json"


@dataclass(frozen=True, slots=True)
class Route:
    """The model for an image, or why none applies (``model`` is None then)."""

    model: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Population:
    """The patients a model was trained on, by age at the study."""

    min_age_years: float
    max_age_years: float
    description: str

    def caution(self, model: str, age_years: float | None) -> str | None:
        """Why ``model``'s result may not apply to a patient of ``age_years`` (None when it
        does, or when the age is unknown)."""
        if age_years is None or self.min_age_years <= age_years <= self.max_age_years + 1:
            return None  # "+ 1": a 17-year-old is 17.9 years old
        return (
            f"The patient's age at the study ({_describe_age(age_years)}) is outside the "
            f"population {model} was trained on: {self.description}. The result may not "
            "apply to this patient."
        )


@dataclass(frozen=True, slots=True)
class _Rule:
    model: str
    modalities: frozenset[str]
    body_parts: frozenset[str]
    views: frozenset[str]
    reason: str
    report_code: dict[str, Any]
    population: Population | None = None

    def matches(self, modality: str, body_part: str, view: str) -> bool:
        return all(
            not allowed or value in allowed
            for value, allowed in (
                (modality, self.modalities),
                (body_part, self.body_parts),
                (view, self.views),
            )
        )


class ModelRouter:
    """Routes images to models by Modality, Body Part Examined and View Position."""

    def __init__(self, rules: tuple[_Rule, ...], not_analysed: dict[str, str]) -> None:
        self._rules = rules
        self._not_analysed = not_analysed

    @classmethod
    def load(cls, terminology_dir: Path) -> ModelRouter:
        """The router of ``<terminology_dir>/imaging/model-routing.json``."""
        data = _read_json(terminology_dir / ROUTING_FILE)
        rules = tuple(
            _Rule(
                model=rule["model"],
                modalities=_upper(rule.get("modalities", [])),
                body_parts=_upper(rule.get("bodyParts", [])),
                views=_upper(rule.get("views", [])),
                reason=rule.get("reason", ""),
                report_code=rule.get("reportCode", {"text": f"AI analysis ({rule['model']})"}),
                population=_population(rule.get("population")),
            )
            for rule in data["rules"]
        )
        return cls(rules, dict(data.get("notAnalysed", {})))

    def route(
        self,
        sop_class_uid: str,
        modality: str | None,
        body_part: str | None,
        view: str | None,
        is_image: bool = True,
    ) -> Route:
        """The model for one image (or the reason it is not analysed)."""
        if sop_class_uid in self._not_analysed:
            return Route(None, self._not_analysed[sop_class_uid])
        if not is_image:
            return Route(None, "Not an image: the instance has no pixel data")
        values = [(v or "").strip().upper() for v in (modality, body_part, view)]
        for rule in self._rules:
            if rule.matches(*values):
                return Route(rule.model, rule.reason)
        return Route(
            None,
            f"No model is routed for modality {values[0] or '(none)'}, body part "
            f"{values[1] or '(none)'}, view {values[2] or '(none)'}",
        )

    def population_caution(self, model: str, age_years: float | None) -> str | None:
        """Why ``model``'s result may not apply to a patient of ``age_years``, if it may not."""
        for rule in self._rules:
            if rule.model == model and rule.population is not None:
                return rule.population.caution(model, age_years)
        return None

    def report_code(self, model: str) -> dict[str, Any]:
        """The DiagnosticReport.code of ``model``'s results."""
        for rule in self._rules:
            if rule.model == model:
                return rule.report_code
        return {"text": f"AI analysis ({model})"}


def patient_age_years(
    patient_age: str | None, birth_date: str | None, study_date: str | None
) -> float | None:
    """The patient's age at the study in years: Patient's Age (0010,1010, ``nnnD|W|M|Y``, or
    a bare number of years as some modalities write it), else from Patient's Birth Date and
    Study Date (DA); None when neither is usable."""
    age = (patient_age or "").strip().upper()
    units = {"D": 365.25, "W": 365.25 / 7, "M": 12.0, "Y": 1.0}
    if len(age) == 4 and age[:3].isdigit() and age[3] in units:
        return int(age[:3]) / units[age[3]]
    if age.isdigit() and len(age) <= 3:  # non-conformant but common: years without a unit
        return float(age)
    born, seen = _day(birth_date), _day(study_date)
    if born is None or seen is None or seen < born:
        return None
    return (seen - born).days / 365.25


def _day(value: str | None) -> date | None:
    if not value or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _describe_age(years: float) -> str:
    return f"{int(years)} years" if years >= 2 else f"{int(years * 12)} months"


def _population(data: dict[str, Any] | None) -> Population | None:
    if not data:
        return None
    return Population(
        float(data.get("minAgeYears", 0)),
        float(data.get("maxAgeYears", 200)),
        str(data.get("description", "")),
    )


def body_site(terminology_dir: Path, body_part: str | None) -> tuple[str, str] | None:
    """The SNOMED CT (code, display) of a DICOM Body Part Examined term."""
    if not body_part:
        return None
    return _body_parts_cache(terminology_dir).get(body_part.strip().upper())


@cache
def _body_parts_cache(terminology_dir: Path) -> Mapping[str, tuple[str, str]]:
    """The Body Part Examined map, read once per process and folder (the file is data)."""
    mapping = _read_json(terminology_dir / BODY_PARTS_FILE)["map"]
    return MappingProxyType({term: (code, display) for term, (code, display) in mapping.items()})


def _upper(values: list[str]) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in values)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"Cannot read {path.name} under FHIR_AI_TERMINOLOGY_DIR ({type(error).__name__})"
        ) from error
