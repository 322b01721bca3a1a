"""Latency of the ``imaging-ai-findings`` CDS service under concurrent load, over real HTTP.

What it measures
----------------
For each database (SQLite, the embedded default; PostgreSQL with ``--pg-url``, in a
fresh scratch database dropped at the end) the benchmark

1. seeds, in-process through the real app (``POST /fhir`` transaction Bundles, as the AI
   workers write them, see ``fhir_ai/fhir/ai_results.py``), one *heavy* patient with
   ``--reports`` (200) AI DiagnosticReports, each with one Observation (pneumonia on a
   chest X-ray, one in three positive), studies spread over the last 25 days so all of
   them are inside the 30-day window, plus one running imaging-analysis Task (so the
   "still running" card is rendered too), and ``--other-patients`` (5) patients with
   three reports each (PostgreSQL: then ``VACUUM ANALYZE``, as autovacuum would);
2. serves the real app (``bench/wsgi_apps.py:fhir_app()``) with gunicorn, gthread,
   ``--workers`` (2) x ``--threads`` (8), with ``FHIR_AI_CDS_AUTH=off`` so the numbers are
   the service's, not JWT crypto's.  With ``--auth`` (default on) a second, identical
   gunicorn serves the app with the client JWT required (a JWKS + issuers file written
   for the run; the client signs a fresh ES384 token with a unique ``jti`` for every
   request, before the timed phase, so the server's verification is measured, not the
   client's signing);
3. drives the servers with ``--clients`` (16) client threads, each with its own
   keep-alive HTTP/1.1 connection, in phases of a fixed number of requests, rotating
   the phases for ``--rounds`` (4) rounds so machine noise hits all of them alike:

   a. ``bare``: ``GET /healthz`` of the same app, same gunicorn (the baseline: what
      Flask + the app's request hooks + gunicorn + HTTP cost under this load),
   b. ``patient-view``: ``POST /cds-services/imaging-ai-findings`` for the heavy patient
      with FULL prefetch (``conditions`` is a searchset Bundle of three Conditions, so
      nothing is fetched back), checked to be 200 with cards,
   c. ``patient-view+jwt``: the same against the auth-on server (``--auth``);

   after ``--warmup`` requests of each kind. Before the first round the client
   connections are spread evenly over each server's workers (``--no-balance`` keeps the
   kernel's split, which is random from run to run, 12/4 to 8/8 over two workers: see
   ``balance_connections``), as the reverse proxy of ``docs/deployment`` spreads requests.

``--rounds 1 --requests 12000`` measures sustained load instead: one long phase per kind,
so the background writer's audit events and issued cards cannot catch up between phases.

It prints p50/p95/p99 latency (ms) and requests/s of each kind, the p50 and p99 ratios
to the bare endpoint, the cards per response and the goal checks (patient-view p99 <
100 ms, p99 within 3x of the bare endpoint), and writes a JSON of the results to
``bench/results/``.  ``--profile N`` additionally runs the same request N times
in-process (Flask test client, one thread) under cProfile and prints where the time
goes; ``--cpu N`` prints the CPU time per call of each kind (this process and, on
PostgreSQL, the database server's processes), which machine noise does not move.

How to run
----------
::

    .venv/bin/python bench/cds_latency.py                      # SQLite
    .venv/bin/python bench/cds_latency.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/cds_latency.py --requests 2000 --profile 200
    .venv/bin/python bench/cds_latency.py --cpu 500 --no-auth --requests 400  # CPU per call
    .venv/bin/python bench/cds_latency.py --no-auth --compare-app "my_patched:fhir_app()"

``--compare-app`` serves a second app beside the first and measures its patient-view in
the same interleaved rounds (an A/B that machine noise hits alike; runs on this shared
machine differ by up to 2x in requests/s).

``--pg-url`` adds PostgreSQL after SQLite (``--skip-sqlite`` measures it alone).  The
client threads share the machine with the servers: on a small machine the numbers are
the system's under full CPU saturation, and the bare endpoint, measured in the same run,
is the yardstick.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import queue
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from fhir_api import (
    ROOT,
    Latency,
    Server,
    percentile,
    scratch_database,
    serving_worker,
    start_server,
    vacuum_analyze,
    write_results,
)
from jwt.algorithms import ECAlgorithm

from fhir_ai.app import close_app, create_app
from fhir_ai.fhir.ai_results import IMAGING_ANALYSIS
from fhir_ai.settings import Settings
from fhir_ai.store.database import upgrade_schema

if str(ROOT) not in sys.path:  # run as a script: the repository root, for the tests' helpers
    sys.path.insert(0, str(ROOT))
from tests.fhir_helpers import SNOMED, ai_report_bundle

SERVICE = "imaging-ai-findings"
CDS_PATH = f"/cds-services/{SERVICE}"
BARE_PATH = "/healthz"
PUBLIC_BASE_URL = "https://cds.bench.invalid"  # JWT audiences and card links
ISS = "https://ehr.bench.invalid"
KID = "bench-es384"
JSON_TYPE = "application/json"
FHIR_JSON = "application/fhir+json"

PROBLEMS = [  # the prefetched problem list: none of them is the AI finding
    {"system": SNOMED, "code": "38341003", "display": "Hypertensive disorder"},
    {"system": SNOMED, "code": "44054006", "display": "Diabetes mellitus type 2"},
    {"system": SNOMED, "code": "195967001", "display": "Asthma"},
]
WINDOW_SPREAD_S = 25 * 24 * 3600  # studies over the last 25 days (window: 30)

GOAL_P99_MS = 100.0
GOAL_P99_RATIO = 3.0
BALANCE_TRIES = 200  # reconnects to spread the connections evenly over the workers


# -- data ------------------------------------------------------------------------------
def _probability(rng: random.Random, positive: bool) -> float:
    return round(rng.uniform(0.55, 0.99) if positive else rng.uniform(0.01, 0.45), 3)


@dataclass
class Seeded:
    """What was loaded."""

    heavy_patient: str
    heavy_reports: int
    heavy_positive: int
    other_patients: list[str]
    seconds: float


def seed(settings: Settings, reports: int, others: int, seed_value: int) -> Seeded:
    """Migrate the database and load the patients through the real app, in-process."""
    started = time.perf_counter()
    app = create_app(settings)
    engine = app.extensions["fhir_ai.engine"]
    upgrade_schema(engine)
    client = app.test_client()
    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}

    def post(path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
        response = client.post(path, data=orjson.dumps(body), headers=headers)
        if response.status_code != expect:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.data[:500]!r}")
        loaded: dict[str, Any] = orjson.loads(response.data)
        return loaded

    def new_patient(family: str) -> str:
        return str(
            post("/fhir/Patient", {"resourceType": "Patient", "name": [{"family": family}]}, 201)[
                "id"
            ]
        )

    def load_reports(patient: str, count: int) -> int:
        positives = 0
        for i in range(count):
            positive = i % 3 == 0
            positives += positive
            when = now - timedelta(seconds=rng.randrange(3600, WINDOW_SPREAD_S))
            post("/fhir", ai_report_bundle(patient, _probability(rng, positive), when), 200)
        return positives

    heavy = new_patient("Heavy")
    positives = load_reports(heavy, reports)
    task = {
        "resourceType": "Task",
        "status": "in-progress",
        "intent": "order",
        "code": {"coding": [{"system": IMAGING_ANALYSIS[0], "code": IMAGING_ANALYSIS[1]}]},
        "for": {"reference": f"Patient/{heavy}"},
    }
    post("/fhir/Task", task, 201)
    other_ids = []
    for n in range(others):
        other = new_patient(f"Other{n}")
        load_reports(other, 3)
        other_ids.append(other)
    if engine.dialect.name == "postgresql":
        vacuum_analyze(engine)  # what autovacuum does in a deployment (off on some servers)
    close_app(app)
    return Seeded(heavy, reports, positives, other_ids, time.perf_counter() - started)


def conditions_prefetch(patient: str) -> dict[str, Any]:
    """The ``conditions`` prefetch: a searchset Bundle of the patient's problem list."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(PROBLEMS),
        "entry": [
            {
                "fullUrl": f"https://ehr.bench.invalid/fhir/Condition/c{i}",
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c{i}",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {"coding": [code], "text": code["display"]},
                    "subject": {"reference": f"Patient/{patient}"},
                },
            }
            for i, code in enumerate(PROBLEMS)
        ],
    }


def hook_body(patient: str, prefetch: dict[str, Any]) -> bytes:
    """A patient-view call with a fresh ``hookInstance`` and the full prefetch."""
    return orjson.dumps(
        {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/bench", "patientId": patient},
            "prefetch": {"conditions": prefetch},
        }
    )


# -- JWT -------------------------------------------------------------------------------
class TokenSigner:
    """The CDS client's key: writes the JWKS + issuers file, signs one token per call."""

    def __init__(self, directory: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())
        jwk = {**ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": KID}
        (directory / "bench-jwks.json").write_text(json.dumps({"keys": [jwk]}))
        self.issuers_file = directory / "bench-issuers.json"
        self.issuers_file.write_text(
            json.dumps({"issuers": [{"iss": ISS, "jwks_file": "bench-jwks.json"}]})
        )

    def bearer(self, path: str) -> str:
        """``Bearer <ES384 JWT>`` for ``path``, with a unique ``jti``."""
        now = int(time.time())
        claims = {
            "iss": ISS,
            "sub": "bench-client",
            "aud": PUBLIC_BASE_URL + path,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})
        return f"Bearer {token}"


# -- servers ---------------------------------------------------------------------------
# -- load ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One prepared request."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]


@dataclass
class Outcome:
    """What one client thread saw in one phase."""

    latencies_ms: list[float] = field(default_factory=list)
    cards: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _send(connection: http.client.HTTPConnection, call: Call) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    connection.request(call.method, call.path, body=call.body, headers=call.headers)
    response = connection.getresponse()
    data = response.read()
    return (time.perf_counter() - started) * 1000, response.status, data


class ClientThread(threading.Thread):
    """One keep-alive connection per server; runs the phases the main thread hands it."""

    def __init__(self, ports: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.connections = {
            kind: http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for kind, port in ports.items()
        }
        self.inbox: queue.Queue[tuple[str, list[Call]] | None] = queue.Queue()
        self.outbox: queue.Queue[Outcome] = queue.Queue()

    def run(self) -> None:
        while (job := self.inbox.get()) is not None:
            server, calls = job
            outcome = Outcome()
            for call in calls:
                try:
                    elapsed, status, data = _send(self.connections[server], call)
                except (http.client.HTTPException, OSError) as error:
                    self.connections[server].close()  # reconnects on the next request
                    outcome.errors.append(f"{type(error).__name__}: {error}")
                    continue
                if status != 200:
                    outcome.errors.append(f"{call.path} -> {status}: {data[:200]!r}")
                    continue
                outcome.latencies_ms.append(elapsed)
                if call.path == CDS_PATH:
                    outcome.cards.append(len(orjson.loads(data).get("cards", [])))
            self.outbox.put(outcome)
        for connection in self.connections.values():
            connection.close()


@dataclass
class Kind:
    """One kind of request: which server, and how to make the i-th call."""

    name: str
    server: str
    make: Callable[[], Call]


@dataclass
class PhaseResult:
    """One phase: all client threads running one kind of request."""

    kind: str
    requests: int
    wall_s: float
    latencies_ms: list[float]
    cards: list[int]
    errors: list[str]


def run_phase(clients: list[ClientThread], kind: Kind, requests: int) -> PhaseResult:
    """Split ``requests`` over the client threads, start them together, wait for all."""
    per_client = [requests // len(clients)] * len(clients)
    for i in range(requests % len(clients)):
        per_client[i] += 1
    jobs = [[kind.make() for _ in range(n)] for n in per_client]  # tokens signed up front
    started = time.perf_counter()
    for client, calls in zip(clients, jobs, strict=True):
        client.inbox.put((kind.server, calls))
    outcomes = [client.outbox.get() for client in clients]
    wall = time.perf_counter() - started
    return PhaseResult(
        kind.name,
        requests,
        wall,
        [x for o in outcomes for x in o.latencies_ms],
        [x for o in outcomes for x in o.cards],
        [x for o in outcomes for x in o.errors],
    )


@dataclass
class KindResult:
    """Everything measured for one kind of request on one database."""

    kind: str
    latency: Latency
    requests_per_s: float
    p50_ratio: float = 1.0
    p99_ratio: float = 1.0
    cards_min: int | None = None
    cards_max: int | None = None
    errors: int = 0


@dataclass
class DbResult:
    """One database's run."""

    database: str
    workers: int
    threads: int
    clients: int
    seeded: dict[str, Any]
    kinds: list[KindResult]
    checks: dict[str, bool]
    phases: list[dict[str, Any]]
    first_errors: list[str]
    connections_per_worker: dict[str, list[int]] = field(default_factory=dict)


def balance_connections(
    clients: list[ClientThread], servers: dict[str, Server]
) -> dict[str, list[int]]:
    """Spread each server's keep-alive client connections evenly over its workers, and
    return how many each worker holds (busiest first).

    A gthread worker serves the connections it accepted for as long as they live, and
    which idle worker accepts a new connection is up to the kernel: 16 connections over
    two workers came out anywhere from 12/4 to 8/8, and the worker with more of them
    saturated its core (its GIL) while the other idled, which moved the same code's
    requests/s by a quarter from run to run (and made two servers of a ``--compare-app``
    A/B differ by their splits rather than their code). A connection of the busiest
    worker is closed and opened again until the counts differ by at most one.
    """
    splits: dict[str, list[int]] = {}
    for name, server in servers.items():
        counts: Counter[int] = Counter()
        for _ in range(BALANCE_TRIES):
            owners = {c: serving_worker(c.connections[name], server) for c in clients}
            if None in owners.values():  # not Linux, or a connection not open
                break
            counts = Counter(dict.fromkeys(server.worker_pids, 0))
            counts.update(pid for pid in owners.values() if pid is not None)
            busiest = max(counts, key=counts.__getitem__)
            if counts[busiest] - min(counts.values()) <= 1:
                break
            connection = next(c for c, pid in owners.items() if pid == busiest).connections[name]
            connection.close()
            connection.request("GET", BARE_PATH)
            connection.getresponse().read()
        splits[name] = sorted(counts.values(), reverse=True)
    return splits


def measure(
    kinds: list[Kind],
    servers: dict[str, Server],
    clients_n: int,
    requests: int,
    warmup: int,
    rounds: int,
    balance: bool = True,
) -> tuple[list[KindResult], list[dict[str, Any]], list[str], dict[str, list[int]]]:
    """Warm up, spread the connections evenly over each server's workers (``balance``),
    then ``rounds`` rounds of one phase per kind, the order rotated each round."""
    ports = {name: server.port for name, server in servers.items()}
    clients = [ClientThread(ports) for _ in range(clients_n)]
    for client in clients:
        client.start()
    phases: list[PhaseResult] = []
    splits: dict[str, list[int]] = {}
    try:
        for kind in kinds:
            warm = run_phase(clients, kind, warmup)
            if warm.errors:
                raise RuntimeError(f"warm-up of {kind.name} failed: {warm.errors[:3]}")
        if balance:  # the client threads wait on their inboxes: their connections are idle
            splits = balance_connections(clients, servers)
        else:
            splits = {
                name: sorted(
                    Counter(serving_worker(c.connections[name], s) for c in clients).values(),
                    reverse=True,
                )
                for name, s in servers.items()
            }
        print(
            "  connections per worker: "
            + ", ".join(f"{name} {'/'.join(map(str, split))}" for name, split in splits.items()),
            flush=True,
        )
        per_round = [
            requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)
        ]
        for r, count in enumerate(per_round):
            order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            if r % 2:
                order.reverse()
            for kind in order:
                phase = run_phase(clients, kind, count)
                phases.append(phase)
                print(
                    f"    round {r + 1}/{rounds} {kind.name:<17} {count:>5} req "
                    f"{count / phase.wall_s:>7.0f} req/s  p50 "
                    f"{percentile(phase.latencies_ms, 0.5):6.1f} ms  p99 "
                    f"{percentile(phase.latencies_ms, 0.99):6.1f} ms"
                    + (f"  errors {len(phase.errors)}" if phase.errors else ""),
                    flush=True,
                )
    finally:
        for client in clients:
            client.inbox.put(None)
        for client in clients:
            client.join(timeout=30)
    results: list[KindResult] = []
    errors: list[str] = []
    for kind in kinds:
        mine = [p for p in phases if p.kind == kind.name]
        latencies = [x for p in mine for x in p.latencies_ms]
        cards = [x for p in mine for x in p.cards]
        errors += [e for p in mine for e in p.errors]
        results.append(
            KindResult(
                kind=kind.name,
                latency=Latency.of(latencies),
                requests_per_s=round(
                    sum(p.requests for p in mine) / sum(p.wall_s for p in mine), 1
                ),
                cards_min=min(cards) if cards else None,
                cards_max=max(cards) if cards else None,
                errors=sum(len(p.errors) for p in mine),
            )
        )
    bare = results[0].latency
    for result in results:
        result.p50_ratio = round(result.latency.p50_ms / bare.p50_ms, 2)
        result.p99_ratio = round(result.latency.p99_ms / bare.p99_ms, 2)
    summary = [
        {"kind": p.kind, "requests": p.requests, "wall_s": round(p.wall_s, 3)} for p in phases
    ]
    return results, summary, errors[:5], splits


# -- profile ---------------------------------------------------------------------------
def profile_in_process(settings: Settings, patient: str, prefetch: dict[str, Any], n: int) -> str:
    """cProfile of ``n`` patient-view calls through the Flask test client (one thread)."""
    app = create_app(settings)
    client = app.test_client()
    headers = {"Content-Type": JSON_TYPE}
    for _ in range(20):  # warm caches
        client.post(CDS_PATH, data=hook_body(patient, prefetch), headers=headers)
    bodies = [hook_body(patient, prefetch) for _ in range(n)]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for body in bodies:
        response = client.post(CDS_PATH, data=body, headers=headers)
        assert response.status_code == 200, response.data[:300]
    profiler.disable()
    elapsed = time.perf_counter() - started
    close_app(app)
    out = io.StringIO()
    out.write(f"in-process: {n} calls, {elapsed / n * 1000:.2f} ms per call (with cProfile)\n")
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def cpu_per_call(
    settings: Settings, patient: str, prefetch: dict[str, Any], n: int, db_url: str | None
) -> str:
    """CPU milliseconds per call of the bare endpoint and of patient-view, through the Flask
    test client: this process (request threads and the background writer, flushed) plus,
    on PostgreSQL, the server processes of the scratch database (from ``/proc``)."""
    app = create_app(settings)
    client = app.test_client()
    writer = app.extensions["fhir_ai.writer"]
    database = db_url.rsplit("/", 1)[1].encode() if db_url else None

    def server_cpu_s() -> float:
        if database is None:
            return 0.0
        ticks = 0
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                command = cmdline.read_bytes()
                if b"postgres: " in command and database in command:
                    fields = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
                    ticks += int(fields[11]) + int(fields[12])  # utime, stime
            except OSError:
                continue
        return ticks / os.sysconf("SC_CLK_TCK")

    def one(kind: str) -> None:
        if kind == "bare":
            client.get(BARE_PATH)
        else:
            body = hook_body(patient, prefetch)
            response = client.post(CDS_PATH, data=body, headers={"Content-Type": JSON_TYPE})
            assert response.status_code == 200, response.data[:300]

    lines = []
    for kind in ("bare", "patient-view"):
        for _ in range(20):
            one(kind)
        writer.flush()
        own, server = time.process_time(), server_cpu_s()
        for _ in range(n):
            one(kind)
        writer.flush()
        own_ms = (time.process_time() - own) / n * 1000
        server_ms = (server_cpu_s() - server) / n * 1000
        lines.append(
            f"  {kind:13s} python {own_ms:6.2f} ms + database server {server_ms:6.2f} ms "
            f"= {own_ms + server_ms:6.2f} ms CPU per call"
        )
    close_app(app)
    return "\n".join(lines)


# -- reporting -------------------------------------------------------------------------
def print_result(result: DbResult) -> None:
    """The table and goal checks of one database."""
    seeded = result.seeded
    print(
        f"\n{result.database}: gunicorn gthread {result.workers} workers x {result.threads} "
        f"threads, {result.clients} client threads (keep-alive), heavy patient "
        f"{seeded['heavy_reports']} AI reports ({seeded['heavy_positive']} positive) "
        f"+ {len(seeded['other_patients'])} other patients; connections per worker: "
        + (
            ", ".join(
                f"{name} {'/'.join(map(str, split))}"
                for name, split in result.connections_per_worker.items()
            )
            or "unknown"
        )
    )
    header = (
        f"{'request':<34}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>8}"
        f"{'p50/bare':>10}{'p99/bare':>10}  cards"
    )
    print(header)
    print("-" * (len(header) + 8))
    labels = {
        "bare": f"bare GET {BARE_PATH}",
        "patient-view": "patient-view (auth off)",
        "patient-view+jwt": "patient-view (ES384 JWT)",
    }
    for k in result.kinds:
        lat = k.latency
        cards = "" if k.cards_min is None else f"{k.cards_min}-{k.cards_max}"
        if k.errors:
            cards += f"  ERRORS {k.errors}"
        print(
            f"{labels.get(k.kind, k.kind):<34}{lat.n:>6}{lat.p50_ms:>9.2f}{lat.p95_ms:>9.2f}"
            f"{lat.p99_ms:>9.2f}{k.requests_per_s:>8.0f}{k.p50_ratio:>9.2f}x{k.p99_ratio:>9.2f}x"
            f"  {cards}"
        )
    if result.first_errors:
        print("first errors:")
        for error in result.first_errors:
            print(f"  {error}")
    print(f"\ngoals ({result.database}, patient-view with auth off)")
    for label, ok in result.checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}")


def goal_checks(kinds: list[KindResult]) -> dict[str, bool]:
    """p99 < 100 ms and p99 within 3x of the bare endpoint, for patient-view (auth off)."""
    pv = next(k for k in kinds if k.kind == "patient-view")
    return {
        f"p99 < {GOAL_P99_MS:g} ms (got {pv.latency.p99_ms:.1f} ms)": pv.latency.p99_ms
        < GOAL_P99_MS,
        f"p99 within {GOAL_P99_RATIO:g}x of bare (got {pv.p99_ratio:.2f}x)": pv.p99_ratio
        <= GOAL_P99_RATIO,
        f"every response 200 with cards (got {pv.cards_min}-{pv.cards_max} cards, "
        f"{pv.errors} errors)": pv.errors == 0 and bool(pv.cards_min),
    }


# -- main ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--pg-url",
        default=None,
        help="also measure PostgreSQL: an admin database URL; a scratch database is created "
        "next to it and dropped at the end",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--reports", type=int, default=200, help="AI reports of the heavy patient")
    parser.add_argument("--other-patients", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per kind")
    parser.add_argument("--warmup", type=int, default=320, help="warm-up requests per kind")
    parser.add_argument("--rounds", type=int, default=4, help="phases per kind, interleaved")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn gthread threads")
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure patient-view with the client JWT required (ES384)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="cProfile N in-process calls after measuring"
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="CPU time of N in-process calls of each kind (this process and the database "
        "server's processes): a figure machine noise does not move",
    )
    parser.add_argument(
        "--app",
        default="wsgi_apps:fhir_app()",
        help="gunicorn app to serve (module on PYTHONPATH or in bench/), to A/B a patched app",
    )
    parser.add_argument(
        "--compare-app",
        help="a second app (as --app) whose patient-view (auth off) is measured in the same "
        "interleaved rounds: an A/B that machine noise hits alike",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--balance",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="spread the client connections evenly over the gunicorn workers before "
        "measuring (--no-balance: keep the kernel's split, random from run to run)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL scratch db")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if args.skip_sqlite and not args.pg_url:
        parser.error("--skip-sqlite needs --pg-url")
    return args


def measure_database(
    args: argparse.Namespace, label: str, db_url: str | None, tmp: Path
) -> DbResult:
    """Seed, serve, measure (and profile) one database."""
    # The in-process app that seeds (and profiles) has every client check off: the FHIR
    # API's (``fhir_auth``, where this version has it) and the CDS client JWT.
    overrides: dict[str, Any] = {"cds_auth": "off", "fhir_auth": "off"}
    settings = Settings(
        data_dir=tmp,
        database_url=db_url,
        public_base_url=PUBLIC_BASE_URL,
        log_level="WARNING",
        auto_migrate=False,
        **overrides,
    )
    print(f"\n== {label}: seeding ...", flush=True)
    seeded = seed(settings, args.reports, args.other_patients, args.seed)
    print(
        f"  seeded heavy patient {seeded.heavy_patient} ({seeded.heavy_reports} reports, "
        f"{seeded.heavy_positive} positive) and {len(seeded.other_patients)} others "
        f"in {seeded.seconds:.1f}s",
        flush=True,
    )
    env = dict(os.environ)
    env.update(
        FHIR_AI_DATA_DIR=str(tmp),
        FHIR_AI_LOG_LEVEL="WARNING",
        FHIR_AI_AUTO_MIGRATE="false",
        FHIR_AI_PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        FHIR_AI_CDS_AUTH="off",
    )
    env.pop("FHIR_AI_CDS_ISSUERS", None)
    if db_url:
        env["FHIR_AI_DATABASE_URL"] = db_url
    else:
        env.pop("FHIR_AI_DATABASE_URL", None)
    prefetch = conditions_prefetch(seeded.heavy_patient)

    def patient_view(headers: dict[str, str]) -> Call:
        body = hook_body(seeded.heavy_patient, prefetch)
        return Call(
            "POST", CDS_PATH, body, {"Content-Type": JSON_TYPE, "Accept": JSON_TYPE, **headers}
        )

    servers: list[Server] = []
    try:
        servers.append(
            start_server(f"{label}-off", args.app, env, args.threads, tmp, BARE_PATH, args.workers)
        )
        by_name = {"off": servers[0]}
        kinds = [
            Kind("bare", "off", lambda: Call("GET", BARE_PATH, None, {})),
            Kind("patient-view", "off", lambda: patient_view({})),
        ]
        if args.auth:
            signer = TokenSigner(tmp)
            auth_env = {
                **env,
                "FHIR_AI_CDS_AUTH": "required",
                "FHIR_AI_CDS_ISSUERS": str(signer.issuers_file),
            }
            servers.append(
                start_server(
                    f"{label}-jwt", args.app, auth_env, args.threads, tmp, BARE_PATH, args.workers
                )
            )
            by_name["jwt"] = servers[1]
            kinds.append(
                Kind(
                    "patient-view+jwt",
                    "jwt",
                    lambda: patient_view({"Authorization": signer.bearer(CDS_PATH)}),
                )
            )
        if args.compare_app:
            servers.append(
                start_server(
                    f"{label}-cmp", args.compare_app, env, args.threads, tmp, BARE_PATH,
                    args.workers,
                )
            )  # fmt: skip
            by_name["cmp"] = servers[-1]
            kinds.append(Kind("patient-view (compare)", "cmp", lambda: patient_view({})))
        print(
            f"  measuring {args.requests} requests per kind ({', '.join(k.name for k in kinds)}), "
            f"{args.clients} client threads, {args.rounds} interleaved rounds ...",
            flush=True,
        )
        kind_results, phases, errors, splits = measure(
            kinds, by_name, args.clients, args.requests, args.warmup, args.rounds, args.balance
        )
    finally:
        for server in servers:
            server.stop()
    result = DbResult(
        database=label,
        workers=args.workers,
        threads=args.threads,
        clients=args.clients,
        seeded=asdict(seeded),
        kinds=kind_results,
        checks=goal_checks(kind_results),
        phases=phases,
        first_errors=errors,
        connections_per_worker=splits,
    )
    print_result(result)
    if args.cpu:
        print(f"\n-- {label}: CPU per in-process call ({args.cpu} calls of each kind)")
        print(cpu_per_call(settings, seeded.heavy_patient, prefetch, args.cpu, db_url))
    if args.profile:
        print(f"\n-- {label}: profile of {args.profile} in-process patient-view calls")
        print(profile_in_process(settings, seeded.heavy_patient, prefetch, args.profile))
    return result


def run(args: argparse.Namespace) -> int:
    results: list[DbResult] = []
    print(
        f"machine: {os.cpu_count()} CPUs (shared with the client threads), "
        f"Python {sys.version.split()[0]}; host {socket.gethostname()}"
    )
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="fhir_ai_cds_bench_") as tmp:
            results.append(measure_database(args, "sqlite", None, Path(tmp)))
    if args.pg_url:
        with (
            scratch_database(args.pg_url, args.keep) as db_url,
            tempfile.TemporaryDirectory(prefix="fhir_ai_cds_bench_") as tmp,
        ):
            results.append(measure_database(args, "postgresql", db_url, Path(tmp)))
    print(f"\n{'=' * 100}")
    for result in results:
        print_result(result)
    if not args.no_json:
        write_results("cds_latency", args, results)
    return 0 if all(all(r.checks.values()) for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
