"""Imaging jobs per second with dynamic batching versus batch 1, under a backlog.

For each batch size (16, then 1; ``--sizes``) in the same run: a fresh SQLite store and a
private Redis database; ``--jobs`` studies (made from a real chest radiograph, new UIDs
each) are stored through the STOW-RS ingestion path, which queues one analysis Task per
study; then one real worker (``--queues imaging --pool threads --concurrency 16``;
``--processes N`` starts N of them) is started with ``FHIR_AI_IMAGING_BATCH_SIZE`` set, and
the time until every Task is completed gives jobs/s (the worker's start-up and first model
load are excluded: the clock starts when the first Task completes). With ``--pg-url`` each
batch size runs on its own scratch PostgreSQL database instead (created beside that URL,
dropped after). Prints both rates and their ratio (goal >= 2x on CPU with a batch of 16).

Beside the jobs, it measures the model's own work per image (probabilities and Grad-CAM,
in this process, one torch thread as a worker has) at each batch size: what batching can
speed up. The job-level ratio is that speed-up diluted by the work batching does not touch
(DICOM decode, preprocessing, heatmap PNG, Task and FHIR writes), so it is printed too.
Usage: ``python -m bench.imaging_batching [--jobs 500]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from flask.testing import FlaskClient

from bench.fhir_api import scratch_database
from bench.imaging import MODEL, SAMPLE
from fhir_ai.app import close_app, create_app
from fhir_ai.imaging.model.inference import LoadedModel
from fhir_ai.imaging.preprocess import prepare
from fhir_ai.settings import Settings
from fhir_ai.store.database import upgrade_schema
from tests.dicom_helpers import distinct_studies, stow_body

REPO = Path(__file__).resolve().parents[1]
THREADS = 16


def backlog(settings: Settings, payloads: list[bytes]) -> None:
    """Store the studies through STOW-RS (in-process); each queues its analysis."""
    app = create_app(settings)
    upgrade_schema(app.extensions["fhir_ai.engine"])
    client = app.test_client()
    for payload in payloads:
        body, content_type = stow_body(payload)
        response = client.post("/dicomweb/studies", data=body, content_type=content_type)
        assert response.status_code == 200, response.get_data(as_text=True)


def completed(client: FlaskClient) -> tuple[int, int]:
    """(completed, all) imaging Tasks."""
    done = client.get("/fhir/Task?code=imaging-analysis&status=completed&_summary=count")
    every = client.get("/fhir/Task?code=imaging-analysis&_summary=count")
    return int(done.get_json()["total"]), int(every.get_json()["total"])


def run(
    batch: int, payloads: list[bytes], redis_url: str, db_url: str | None, processes: int = 1
) -> float:
    data = Path(tempfile.mkdtemp(prefix=f"bench-batch{batch}-"))
    settings = Settings(
        data_dir=data, database_url=db_url, broker_url=redis_url, log_level="WARNING",
        fhir_auth="off", audit=False, analyze_on_store=True,
    )  # fmt: skip
    backlog(settings, payloads)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_AI_")}
    env.update(
        FHIR_AI_BROKER_URL=redis_url, FHIR_AI_DATA_DIR=str(data), FHIR_AI_LOG_LEVEL="WARNING",
        FHIR_AI_IMAGING_BATCH_SIZE=str(batch), FHIR_AI_AUDIT="false", PYTHONPATH=str(REPO),
    )  # fmt: skip
    if db_url:
        env["FHIR_AI_DATABASE_URL"] = db_url
    workers = []
    for index in range(processes):
        command = [sys.executable, "-m", "celery", "-A", "workers.main", "worker", "-Q", "imaging",
                   "--pool", "threads", "-c", str(THREADS), "--without-gossip", "--without-mingle",
                   "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"]  # fmt: skip
        with (data / f"worker{index}.log").open("wb") as log:
            workers.append(
                subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            )
    app = create_app(settings)  # one app for the polls (not one per poll: CPU the worker needs)
    client = app.test_client()
    try:
        _wait(client, lambda done, _every: done >= 1)  # the worker is up, its model loaded
        started, done_at_start = time.perf_counter(), completed(client)[0]
        _wait(client, lambda done, every: done >= every)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=120)
        close_app(app)
    return (len(payloads) - done_at_start) / elapsed


def model_stage_ms(
    model: LoadedModel, one: npt.NDArray[np.float32], batch: int, seconds: float = 5.0
) -> float:
    """Milliseconds of ``model``'s work (probabilities and Grad-CAM maps) per image at
    ``batch`` copies of the input ``one``."""
    inputs = np.stack([one] * batch)
    model.analyse(inputs)  # warm-up
    passes, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.analyse(inputs)
        passes += 1
    return (time.perf_counter() - started) / (passes * batch) * 1000


def _wait(
    client: FlaskClient, condition: Callable[[int, int], bool], timeout: float = 3600
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, every = completed(client)
        if condition(done, every):
            return
        time.sleep(0.5)
    raise TimeoutError("the imaging Tasks did not complete")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Settings().shared_data_dir)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--sizes", default="16,1")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="imaging worker processes (each with its own model, batcher and job threads)",
    )
    parser.add_argument(
        "--redis", default=os.environ.get("FHIR_AI_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument(
        "--pg-url",
        help="run each batch size on its own scratch PostgreSQL database created next to this "
        "URL (postgresql+psycopg://postgres@127.0.0.1:5432/test) instead of SQLite",
    )
    args = parser.parse_args()
    sample = (args.data / SAMPLE).read_bytes()
    sizes = [int(size) for size in args.sizes.split(",")]
    torch.set_num_threads(Settings().worker_threads)  # as the worker process does
    model = LoadedModel.load(MODEL)
    one = prepare(sample, model.card.input.size).model_input
    stage = {size: model_stage_ms(model, one, size) for size in sizes}
    payloads = distinct_studies(sample, args.jobs, prefix="BENCH")
    rates = {}
    for size in sizes:
        database = scratch_database(args.pg_url, keep=False) if args.pg_url else nullcontext()
        with database as db_url:
            rates[size] = run(size, payloads, args.redis, db_url, args.processes)
    print(f"database: {'PostgreSQL' if args.pg_url else 'SQLite'}")
    for size, rate in rates.items():
        print(
            f"batch {size:>3}, {args.processes} x {THREADS} job threads: "
            f"{rate:8.2f} imaging jobs/s "
            f"({1000 / rate:6.1f} ms per job; model work alone {stage[size]:6.1f} ms per image)"
        )
    if 16 in rates and 1 in rates:
        print(f"batching speed-up (16 vs 1): {rates[16] / rates[1]:.2f}x (goal >= 2x on CPU)")
        print(
            f"  of the model work alone: {stage[1] / stage[16]:.2f}x; the rest of a job "
            f"(decode, preprocessing, PNG, Task and FHIR writes) is not batched"
        )


if __name__ == "__main__":
    main()
