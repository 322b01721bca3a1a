"""Imaging throughput: end to end (DICOM bytes -> stored report) beside the forward pass.

In one process, in the same run:

1. decode + preprocess time per transfer syntax (median of 3) for the shared test files;
2. the model's forward pass alone at batch size B (images/s);
3. end to end at steady state: N studies made from a real chest radiograph (new UIDs each)
   are stored through the STOW-RS ingestion path into a temporary store, then analysed by
   B job threads sharing one dynamically batched model, results written as FHIR (images/s).

Prints the ratio end-to-end / forward (goal >= 0.8 at steady state).
Usage: ``python -m bench.imaging [--data ../shared/data] [--studies 64] [--batch 16]``.
Not a test.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.uid import UID

from fhir_ai.dicomweb.ingest import StowService
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.fhir.transaction import BundleProcessor
from fhir_ai.imaging.analysis import StudyAnalyzer
from fhir_ai.imaging.batching import BatchedModel
from fhir_ai.imaging.jobs import analysis_key
from fhir_ai.imaging.model.inference import LoadedModel
from fhir_ai.imaging.preprocess import prepare
from fhir_ai.imaging.report import result_bundle
from fhir_ai.imaging.routing import ModelRouter
from fhir_ai.imaging.study_records import StudyRecords, StudyRecordSettings
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.dicom import DicomIndex
from fhir_ai.store.objects import FileObjectStore
from fhir_ai.store.repository import ResourceStore
from tests.dicom_helpers import distinct_studies

MODEL = "pneumonia-cxr"
SAMPLE = "dicom/chest_radiographs/rsna_pneumonia_sample_jpegbaseline.dcm"


def decode_table(data_dir: Path, size: tuple[int, int]) -> None:
    print("decode + preprocess per transfer syntax (median of 3, ms)")
    for folder in ("transfer_syntaxes", "chest_radiographs"):
        for path in sorted((data_dir / "dicom" / folder).iterdir()):
            data = path.read_bytes()
            dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            times = []
            for _ in range(3):
                started = time.perf_counter()
                try:
                    prepare(data, size)
                except Exception as error:
                    times = []
                    print(f"  {path.name:<42} refused: {type(error).__name__}")
                    break
                times.append((time.perf_counter() - started) * 1000)
            if times:
                syntax = UID(str(dataset.file_meta.TransferSyntaxUID)).name
                shape = f"{dataset.get('Rows')}x{dataset.get('Columns')}"
                median = statistics.median(times)
                print(f"  {path.name:<42} {syntax[:40]:<40} {shape:>10} {median:8.1f}")


def forward_rate(model: LoadedModel, inputs: np.ndarray, seconds: float = 5.0) -> float:
    model.predict(inputs)  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict(inputs)
        done += len(inputs)
    return done / (time.perf_counter() - started)


def end_to_end_rate(sample: bytes, count: int, batch: int, tmp: Path) -> float:
    settings = Settings(data_dir=tmp, analyze_on_store=False, log_level="WARNING")
    engine = create_db_engine(settings)
    upgrade_schema(engine)
    registry = SearchRegistry.load()
    store, fhir = ResourceStore(engine, registry), FhirService(registry, settings)
    bundles = BundleProcessor(fhir, store)
    index, objects = DicomIndex(engine), FileObjectStore(settings.objects_dir())
    router = ModelRouter.load(settings.terminology_path())
    records = StudyRecords(index, store, fhir, None, router, StudyRecordSettings(
        lambda: "http://localhost/dicomweb", settings.dicom_patient_id_system,
        settings.terminology_path(), False))  # fmt: skip
    model = BatchedModel(LoadedModel.load(MODEL), batch, settings.imaging_batch_wait_ms / 1000)
    analyzer = StudyAnalyzer(store, index, objects, records, lambda _: model, router.report_code)
    stow = StowService(objects, index, records)
    payloads = distinct_studies(sample, count, prefix="BENCH")
    card = model.card

    def one(data: bytes) -> None:
        stow.store([data], None)
        uid = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID
        with store.session(read_only=True) as session:
            query = fhir.parse_search(
                "ImagingStudy", [("identifier", f"urn:dicom:uid|urn:oid:{uid}")], strict=True
            )
            study_id = session.search(query, "http://localhost/fhir").matches[0].id
        result = analyzer.analyze(study_id, MODEL, analysis_key(uid, card.name, card.version))
        bundles.process(result_bundle(result), "http://localhost/fhir", with_resources=False)

    with ThreadPoolExecutor(max_workers=batch) as pool:
        list(pool.map(one, payloads[:batch]))  # warm-up
        started = time.perf_counter()
        list(pool.map(one, payloads[batch:]))
    return (count - batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Settings().shared_data_dir)
    parser.add_argument("--studies", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    # As a CPU worker process does: OpenMP threads beyond the free cores spin and collapse
    # throughput by 10x or more on a shared machine.
    torch.set_num_threads(Settings().worker_threads)
    model = LoadedModel.load(MODEL)
    size = model.card.input.size
    decode_table(args.data, size)
    sample = (args.data / SAMPLE).read_bytes()
    one_input = prepare(sample, size).model_input
    inputs = np.stack([one_input] * args.batch)
    forward = forward_rate(model, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        e2e = end_to_end_rate(sample, args.studies + args.batch, args.batch, Path(tmp))
    threads = torch.get_num_threads()
    where = f"{model.device}, {threads} thread(s)"
    print(f"forward pass alone, batch {args.batch}: {forward:9.1f} images/s ({where})")
    print(f"end to end (bytes -> stored report), {args.batch} job threads: {e2e:9.1f} images/s")
    print(f"ratio end-to-end / forward: {e2e / forward:.3f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
