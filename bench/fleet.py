"""Queue overhead of the worker fleet beside a raw Redis round trip, in the same run.

Starts one prefork worker (``-c 1``, queue ``default``) on the given Redis and a fresh
SQLite store (or ``--database-url``), then, on that idle fleet, submits fleet probe jobs
(``seconds=0``) one at a time and waits for each:

* enqueue -> start: ``JobService.submit`` called -> the worker's ``Task.executionPeriod.start``
  (the broker hop, the worker's pick-up and its first Task transaction);
* end to end: submitted -> ``Task.lastModified`` of the completed Task (the result written,
  the Task completed);
* raw Redis round trip: LPUSH + BRPOP of one small message on the same server.

Usage: ``python bench/fleet.py [--redis redis://127.0.0.1:6379/13] [--jobs 200]``. Not a test.
(Batching throughput of the imaging queue is measured by the imaging batching bench.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import redis

from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.jobs.probe import probe_request
from fhir_ai.jobs.queue import CeleryJobQueue
from fhir_ai.jobs.service import JobService
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.repository import ResourceStore

REPO = Path(__file__).resolve().parents[1]


def percentiles(values: list[float]) -> str:
    """p50 / p95 / max in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    p50, top = statistics.median(ordered), ordered[-1]
    return f"p50 {p50 * 1e3:7.2f} ms  p95 {p95 * 1e3:7.2f} ms  max {top * 1e3:7.2f} ms"


def redis_round_trips(url: str, count: int) -> list[float]:
    """LPUSH + BRPOP of a 200-byte message, ``count`` times."""
    client = redis.Redis.from_url(url)
    key = f"bench-fleet-{uuid.uuid4().hex}"
    payload = b"x" * 200
    times = []
    for _ in range(count):
        started = time.perf_counter()
        client.lpush(key, payload)
        client.brpop([key], timeout=5)
        times.append(time.perf_counter() - started)
    client.delete(key)
    return times


def epoch(timestamp: str) -> float:
    """Seconds since the epoch of a FHIR instant."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_AI_")}
    env.update(
        FHIR_AI_BROKER_URL=settings.broker_url or "",
        FHIR_AI_DATABASE_URL=settings.resolved_database_url(),
        FHIR_AI_DATA_DIR=str(settings.data_dir),
        FHIR_AI_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    command = [sys.executable, "-m", "celery", "-A", "workers.main", "worker", "-Q", "default",
               "--pool", "prefork", "-c", "1", "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h",
               "--without-gossip", "--without-mingle"]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def run_job(jobs: JobService) -> tuple[float, float]:
    """(enqueue -> start, end to end) of one probe job, in seconds."""
    submitted = time.time()
    task_id = jobs.submit(probe_request(uuid.uuid4().hex)).task_id
    while True:
        task = jobs.task(task_id)
        if task["status"] in ("completed", "failed"):
            start = epoch(task["executionPeriod"]["start"])
            return start - submitted, epoch(task["lastModified"]) - submitted
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--redis", default=os.environ.get("FHIR_AI_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    settings = Settings(
        data_dir=data, broker_url=args.redis, database_url=args.database_url, log_level="WARNING"
    )
    engine = create_db_engine(settings)
    upgrade_schema(engine)
    registry = SearchRegistry.load()
    jobs = JobService(
        ResourceStore(engine, registry), FhirService(registry, settings), CeleryJobQueue(settings)
    )
    worker = start_worker(settings, data / "worker.log")
    try:
        for _ in range(5):  # warm-up: the worker's child builds its runtime on the first job
            run_job(jobs)
        samples = [run_job(jobs) for _ in range(args.jobs)]
        raw = redis_round_trips(args.redis, args.jobs)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    print(
        f"fleet bench: {args.jobs} probe jobs, one idle prefork worker, {engine.dialect.name} store"
    )
    print(f"raw Redis LPUSH+BRPOP   {percentiles(raw)}")
    print(f"enqueue -> start        {percentiles([s for s, _ in samples])}")
    print(f"end to end (one job)    {percentiles([e for _, e in samples])}")


if __name__ == "__main__":
    main()
