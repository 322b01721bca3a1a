"""``fhir-ai analyze PATH...``: analyse DICOM files offline, no server or database.

Files are grouped by study and routed model (or ``--model``); each group gets one
forward pass and its results are written as a FHIR collection Bundle (DiagnosticReport,
Observation, Device, heatmap Binary, Provenance) to ``<out>/<study>.<model>.json``.

A file's study is known only once it is read, so every group stays open until the last
file: a group keeps only its images' model inputs (a few kB each) and their paths, and the
most suspicious image is decoded again for its overlay. Memory stays flat however many
images the run reads.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from fhir_ai.errors import DicomRejected
from fhir_ai.imaging.analysis import FloatArray, StudyImages, analysis_result
from fhir_ai.imaging.dicom_parse import ParsedInstance, parse_dataset, read_dataset
from fhir_ai.imaging.heatmap import UInt8Array
from fhir_ai.imaging.imaging_study import DICOM_UID
from fhir_ai.imaging.jobs import analysis_key
from fhir_ai.imaging.model.outputs import ImagingModel
from fhir_ai.imaging.preprocess import prepare, prepare_dataset
from fhir_ai.imaging.report import result_bundle
from fhir_ai.imaging.routing import ModelRouter, patient_age_years


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary: a file or a study, and what came of it."""

    name: str
    model: str
    outcome: str  # positive / negative / skipped / refused
    detail: str


@dataclass(slots=True)
class _Group:
    study_uid: str
    model: str
    uids: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    inputs: list[FloatArray] = field(default_factory=list)  # model inputs, not the images
    cautions: dict[str, None] = field(default_factory=dict)  # an ordered set


def dicom_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The files under ``paths`` (folders walked recursively), in order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def analyze_files(
    files: Iterable[Path],
    router: ModelRouter,
    models: Callable[[str], ImagingModel],
    out_dir: Path,
    forced_model: str | None = None,
) -> list[Row]:
    """Analyse ``files``; write one Bundle per (study, model); the summary rows."""
    rows: list[Row] = []
    groups: dict[tuple[str, str], _Group] = {}
    for path in files:
        rows.extend(_add(path, router, models, groups, forced_model))
    out_dir.mkdir(parents=True, exist_ok=True)
    for group in groups.values():
        try:
            rows.append(_write(group, models(group.model), router, out_dir))
        except (OSError, DicomRejected) as error:  # a file changed since it was read
            reason = error.message if isinstance(error, DicomRejected) else str(error)
            rows.append(Row(f"study {group.study_uid}", group.model, "refused", reason))
    return rows


def _add(
    path: Path,
    router: ModelRouter,
    models: Callable[[str], ImagingModel],
    groups: dict[tuple[str, str], _Group],
    forced_model: str | None,
) -> list[Row]:
    try:
        dataset = read_dataset(path.read_bytes())
        parsed = parse_dataset(dataset, check_pixel_data=False)
        model = forced_model or _route(router, parsed)
        if model is None:
            reason = router.route(
                parsed.sop_class_uid, parsed.modality, parsed.body_part, parsed.view,
                parsed.is_image,
            ).reason  # fmt: skip
            return [Row(path.name, "-", "skipped", reason)]
        model_input = prepare_dataset(dataset, models(model).card.input.size).model_input
    except DicomRejected as error:
        return [Row(path.name, forced_model or "-", "refused", error.message)]
    group = groups.setdefault(
        (parsed.study_instance_uid, model), _Group(parsed.study_instance_uid, model)
    )
    group.uids.append(parsed.sop_instance_uid)
    group.paths.append(path)
    group.inputs.append(model_input)
    age = patient_age_years(parsed.patient_age, parsed.patient_birth_date, parsed.study_date)
    if caution := router.population_caution(model, age):
        group.cautions[caution] = None
    return []


def _route(router: ModelRouter, parsed: ParsedInstance) -> str | None:
    route = router.route(
        parsed.sop_class_uid, parsed.modality, parsed.body_part, parsed.view, parsed.is_image
    )
    return route.model


def _write(group: _Group, model: ImagingModel, router: ModelRouter, out_dir: Path) -> Row:
    identifier = {"system": DICOM_UID, "value": f"urn:oid:{group.study_uid}"}

    def overlay_base(index: int) -> UInt8Array:
        return prepare(group.paths[index].read_bytes(), model.card.input.size).overlay_base

    result = analysis_result(
        model,
        StudyImages(group.uids, group.inputs, overlay_base, [], tuple(group.cautions)),
        analysis_key(group.study_uid, model.card.name, model.card.version),
        {},
        {"identifier": identifier, "display": f"Study {group.study_uid}"},
        router.report_code(group.model),
    )
    bundle = _collection(result_bundle(result))
    target = out_dir / f"{group.study_uid}.{group.model}.json"
    target.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
    verdict = "positive" if result.positive else "negative"
    detail = f"p={result.probability:.3f} (threshold {model.card.threshold.value:.2f}) -> {target}"
    return Row(
        f"study {group.study_uid} ({len(group.inputs)} images)", group.model, verdict, detail
    )


def _collection(transaction: dict[str, Any]) -> dict[str, Any]:
    """The transaction's resources as a collection Bundle (nothing to POST offline)."""
    entries = [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in transaction["entry"]]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def run(paths: list[Path], model: str | None, out_dir: Path) -> list[Row]:
    """The ``fhir-ai analyze`` command: progress bar, Bundles written, summary table."""
    from fhir_ai.imaging.model.inference import LoadedModel
    from fhir_ai.settings import Settings

    cache: dict[str, ImagingModel] = {}

    def models(name: str) -> ImagingModel:
        if name not in cache:
            cache[name] = LoadedModel.load(name)
        return cache[name]

    router = ModelRouter.load(Settings().terminology_path())
    files = list(dicom_files(paths))
    with click.progressbar(files, label="Analysing", file=sys.stderr) as progress:
        rows = analyze_files(progress, router, models, out_dir, model)
    width = max((len(r.name) for r in rows), default=10)
    for row in rows:
        click.echo(f"{row.name:<{width}}  {row.model:<14} {row.outcome:<9} {row.detail}")
    return rows
