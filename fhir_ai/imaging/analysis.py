"""Analysing a stored study with one model: the pipeline a worker runs for one Task.

stored instances -> routed images -> decode and prepare -> batched forward pass
(probabilities and Grad-CAM maps together) -> study probability (the most suspicious image)
and its map -> FHIR results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fhir_ai.errors import DicomRejected, NotAnalysable, NotFound
from fhir_ai.imaging.heatmap import UInt8Array, overlay_png
from fhir_ai.imaging.imaging_study import DICOM_UID
from fhir_ai.imaging.model.outputs import ImagingModel
from fhir_ai.imaging.preprocess import PreparedImage, prepare
from fhir_ai.imaging.report import AnalysisResult
from fhir_ai.imaging.study_records import StudyRecords
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import ObjectStore
from fhir_ai.store.repository import ResourceStore

logger = logging.getLogger("fhir_ai.imaging")

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class StudyImages:
    """The model inputs of a study's images for one model, and those that could not be read."""

    instances: list[str]  # SOP Instance UIDs, in the order of ``inputs``
    inputs: list[FloatArray]  # each image's model input (1 x h x w)
    #: The i-th image's overlay base (``PreparedImage.overlay_base``): only the most
    #: suspicious one is drawn on, so a caller may decode it again rather than keep all.
    overlay_base: Callable[[int], UInt8Array]
    refused: list[str]  # one reason per unreadable instance
    cautions: tuple[str, ...] = ()  # why the result may not apply (e.g. the patient's age)


class StudyAnalyzer:
    """Turns (ImagingStudy, model) into an :class:`AnalysisResult`."""

    def __init__(
        self,
        store: ResourceStore,
        index: DicomIndex,
        objects: ObjectStore,
        records: StudyRecords,
        models: Callable[[str], ImagingModel],
        report_codes: Callable[[str], dict[str, Any]],
    ) -> None:
        self.store = store
        self.index = index
        self.objects = objects
        self.records = records
        self.models = models
        self.report_codes = report_codes

    def analyze(self, study_id: str, model_name: str, key: str) -> AnalysisResult:
        """Run ``model_name`` on ImagingStudy ``study_id``; raises with a reason if it cannot."""
        study = self._study(study_id)
        model = self.models(model_name)
        images = self.images(study, model_name, model.card.input.size)
        return analysis_result(
            model,
            images,
            key,
            study,
            {"reference": f"ImagingStudy/{study_id}"},
            self.report_codes(model_name),
        )

    def images(self, study: dict[str, Any], model_name: str, size: tuple[int, int]) -> StudyImages:
        """Decode and prepare the study's images routed to ``model_name``."""
        uid = _study_uid(study)
        routed = self.records.routes(self.index.instances(uid)).get(model_name, [])
        if not routed:
            raise NotAnalysable(f"No image of the study is routed to {model_name}")
        kept: list[str] = []
        prepared: list[PreparedImage] = []
        refused: list[str] = []
        cautions = dict.fromkeys(
            caution
            for instance in routed
            if (caution := self.records.population_caution(model_name, instance))
        )
        for instance in routed:
            try:
                prepared.append(prepare(self.objects.get(instance.object_key), size))
                kept.append(instance.sop_instance_uid)
            except DicomRejected as error:
                refused.append(error.message)
        if not prepared:
            raise DicomRejected(f"No routed image could be decoded: {'; '.join(refused)}")
        return StudyImages(
            kept,
            [image.model_input for image in prepared],
            lambda index: prepared[index].overlay_base,
            refused,
            tuple(cautions),
        )

    def _study(self, study_id: str) -> dict[str, Any]:
        with self.store.session(read_only=True) as session:
            content = session.read("ImagingStudy", study_id).content
        if content is None:
            raise NotFound(f"ImagingStudy/{study_id} is deleted")
        return dict(content)


def _study_uid(study: dict[str, Any]) -> str:
    for identifier in study.get("identifier", []):
        if identifier.get("system") == DICOM_UID:
            return str(identifier["value"]).removeprefix("urn:oid:")
    raise NotAnalysable("The ImagingStudy has no urn:dicom:uid identifier")


def analysis_result(
    model: ImagingModel,
    images: StudyImages,
    key: str,
    study: dict[str, Any],
    study_reference: dict[str, Any],
    report_code: dict[str, Any],
) -> AnalysisResult:
    """One forward pass over a study's images; the most suspicious one is explained."""
    outputs = model.analyse(np.stack(images.inputs))
    best = max(range(len(outputs)), key=lambda i: outputs[i].probability)
    return AnalysisResult(
        key=key,
        study_reference=study_reference,
        study=study,
        card=model.card,
        probability=outputs[best].probability,
        instance_uid=images.instances[best],
        heatmap_png=overlay_png(images.overlay_base(best), outputs[best].heatmap),
        report_code=report_code,
        cautions=images.cautions,
    )
