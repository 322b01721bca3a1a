"""End-to-end latency benchmark of the FHIR REST API on PostgreSQL, over real HTTP.

What it measures
----------------
For each database size N given with ``--sizes`` (cumulative: the database grows from the
first size to the next), the benchmark

1. bulk-loads DiagnosticReports (and their Patients) into a fresh PostgreSQL database
   through the real store (``ResourceStore`` sessions, ``--batch`` creates per
   transaction), so the search index is filled by the same code the API uses.  Reports
   are spread over N/``--per-patient`` patients, five v2-0074 categories, several LOINC
   codes and ten years of ``effectiveDateTime``.  After each load it runs
   ``VACUUM ANALYZE`` (what autovacuum does in a real deployment; ``--no-analyze`` skips
   it, and this server has autovacuum off);
2. serves the real app with gunicorn (1 worker, gthread, ``--threads`` threads) and, in
   exactly the same way, a bare Flask app with one JSON route (the baseline: what
   Flask + gunicorn + HTTP cost on this machine);
3. measures sequentially over keep-alive connections, in rounds that shuffle the three
   kinds of request so machine noise hits all of them alike:

   a. ``GET /ping`` on the bare app,
   b. ``GET /fhir/DiagnosticReport/{id}`` for random ids (read),
   c. ``GET /fhir/DiagnosticReport?patient=..&category=..&date=ge..`` for random patients
      (the US Core search; typically 5-20 entries on the default page of 20),

   and then ``--creates`` sequential ``POST /fhir/DiagnosticReport`` (creates/s);
4. runs ``EXPLAIN (ANALYZE, BUFFERS)`` of one representative search (the SQL the store
   runs, from ``fhir_ai.fhir.search.sql.page``) to show which indexes are used.

It prints a table per size, the search p95 growth from the smallest to the largest size
and the goal checks (search p95 < 20 ms, search p95 growth < 1.5x, read p50 within 3x of
the bare endpoint), and writes a JSON of the results to ``bench/results/``.

How to run
----------
PostgreSQL must accept ``--pg-url`` (an admin database; a scratch database named
``fhir_ai_bench_<random>`` is created next to it and dropped at the end unless
``--keep``)::

    .venv/bin/python bench/fhir_api.py --sizes 10000 100000

Loading 100k reports takes a few minutes.  ``--requests`` sets the measured requests of
each kind per size, ``--no-json`` skips the results file.  To compare PostgreSQL's plan
caching (psycopg prepares a statement after 5 executions; the server may then run a
generic plan), measure each size once per mode; the goals are judged on the first::

    .venv/bin/python bench/fhir_api.py --sizes 10000 100000 \\
        --plan-cache-modes auto force_custom_plan
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from fhir_ai.fhir.search import sql
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.search.query import parse_query
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine, upgrade_schema
from fhir_ai.store.repository import ResourceStore

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
GUNICORN = Path(sys.executable).parent / "gunicorn"

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
LOINC = "http://loinc.org"
# category -> LOINC codes that go with it
CATEGORIES: dict[str, list[tuple[str, str]]] = {
    "LAB": [
        ("58410-2", "CBC panel - Blood by Automated count"),
        ("24323-8", "Comprehensive metabolic 2000 panel"),
        ("57698-3", "Lipid panel with direct LDL"),
    ],
    "RAD": [("36643-5", "XR Chest 2 Views"), ("37637-4", "XR Knee 3 Views")],
    "CT": [("24627-2", "CT Chest"), ("30799-1", "CT Abdomen W contrast")],
    "NMR": [("24590-2", "MR Brain"), ("30656-3", "MR Lumbar spine")],
    "RUS": [("24558-9", "US Abdomen"), ("46342-2", "US Thyroid")],
}
FIRST_DAY = datetime(2015, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 10 * 365 * 24 * 3600  # ten years of effectiveDateTime
BASE_URL = "http://bench.invalid/fhir"
FHIR_JSON = "application/fhir+json"

GOAL_SEARCH_P95_MS = 20.0
GOAL_SEARCH_GROWTH = 1.5
GOAL_READ_RATIO = 3.0


# -- data ------------------------------------------------------------------------------
@dataclass
class Dataset:
    """What has been loaded so far (cumulative over sizes)."""

    patients: list[str] = field(default_factory=list)
    report_ids: list[str] = field(default_factory=list)


def patient_resource(rng: random.Random) -> dict[str, Any]:
    """A small Patient."""
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 70))
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": uuid.uuid4().hex}],
        "name": [{"family": f"Bench{rng.randrange(10**8):08d}", "given": ["Ada"]}],
        "gender": rng.choice(["female", "male"]),
        "birthDate": born.isoformat(),
    }


def report_resource(rng: random.Random, patient_id: str) -> dict[str, Any]:
    """A US Core-like DiagnosticReport of ``patient_id``."""
    category = rng.choice(list(CATEGORIES))
    code, display = rng.choice(CATEGORIES[category])
    when = FIRST_DAY + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    effective = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    issued = (when + timedelta(hours=rng.randrange(1, 48))).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": V2_0074, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "issued": issued,
        "conclusion": "No acute findings.",
    }


def load(
    store: ResourceStore, data: Dataset, size: int, per_patient: int, batch: int, seed: int
) -> None:
    """Grow the database to ``size`` DiagnosticReports (and their Patients)."""
    rng = random.Random(f"{seed}-{size}")
    wanted_patients = max(1, size // per_patient)
    new_patients: list[str] = []
    with store.session() as session:
        for _ in range(wanted_patients - len(data.patients)):
            new_patients.append(session.create(patient_resource(rng)).id)
    data.patients += new_patients
    owners = new_patients or data.patients
    todo = size - len(data.report_ids)
    started = time.perf_counter()
    done = 0
    while done < todo:
        chunk = min(batch, todo - done)
        with store.session() as session:
            for _ in range(chunk):
                stored = session.create(report_resource(rng, rng.choice(owners)))
                data.report_ids.append(stored.id)
        done += chunk
        if done % 10_000 < batch or done == todo:
            rate = done / (time.perf_counter() - started)
            print(f"  loaded {len(data.report_ids):>8,} reports ({rate:,.0f}/s)", flush=True)


def vacuum_analyze(engine: Engine) -> None:
    """What autovacuum would do after a bulk load: visibility map and statistics."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def search_params(rng: random.Random, data: Dataset) -> list[tuple[str, str]]:
    """A US Core search: a random patient, category, and a ``ge`` date in the first 8 years."""
    since = FIRST_DAY + timedelta(seconds=rng.randrange(SPAN_SECONDS * 8 // 10))
    return [
        ("patient", rng.choice(data.patients)),
        ("category", rng.choice(list(CATEGORIES))),
        ("date", f"ge{since.date().isoformat()}"),
    ]


# -- database --------------------------------------------------------------------------
@contextlib.contextmanager
def scratch_database(admin_url: str, keep: bool) -> Iterator[str]:
    """Create a fresh database next to ``admin_url``; drop it at the end unless ``keep``."""
    admin: URL = make_url(admin_url)
    name = f"fhir_ai_bench_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    print(f"database {name} created")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"database {name} kept (--keep)")
        else:
            with admin_engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            print(f"database {name} dropped")
        admin_engine.dispose()


# -- servers ---------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One gunicorn process serving one app."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    #: The pids of its worker processes, as each wrote them once its app was built.
    worker_pids: tuple[int, ...] = ()

    def stop(self) -> None:
        """Terminate gunicorn (and its worker) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str,
    app: str,
    env: dict[str, str],
    threads: int,
    log_dir: Path,
    probe: str,
    workers: int = 1,
) -> Server:
    """Run ``gunicorn`` for ``app`` (``module:factory()``) and wait until every worker has
    built its app and ``probe`` answers.

    Waiting for every worker matters: gthread workers accept keep-alive connections for as
    long as they live, so clients connecting while the second worker still builds its app
    all land on the first one, and the benchmark measures one process on one core (it did,
    until 2026-11: all 16 client connections were held by one of two workers).
    """
    port = free_port()
    log = log_dir / f"{name}.log"
    ready = log_dir / f"{name}.ready"
    ready.unlink(missing_ok=True)
    config = log_dir / f"{name}.gunicorn.py"
    config.write_text(
        "def post_worker_init(worker):\n"
        f"    with open({str(ready)!r}, 'a') as ready:\n"
        "        ready.write(f'{worker.pid}\\n')\n"
    )
    command = [
        str(GUNICORN),
        f"--config={config}",
        f"--workers={workers}",
        "--worker-class=gthread",
        f"--threads={threads}",
        f"--bind=127.0.0.1:{port}",
        "--keep-alive=600",
        "--log-level=warning",
        f"--pythonpath={BENCH_DIR}",
        app,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
    server = Server(name, port, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} server exited:\n{log.read_text()}")
        if not ready.exists() or len(ready.read_text().split()) < workers:
            time.sleep(0.2)
            continue
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", probe)
            if connection.getresponse().status == 200:
                connection.close()
                pids = tuple(int(pid) for pid in ready.read_text().split())
                return Server(name, port, process, log, pids)
            connection.close()
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} server did not answer in time:\n{log.read_text()}")


def serving_worker(connection: http.client.HTTPConnection, server: Server) -> int | None:
    """The pid of the worker of ``server`` that holds the server end of ``connection``
    (Linux: the socket's inode in ``/proc/net/tcp``, then the workers' open files)."""
    if connection.sock is None:
        return None
    client_port = connection.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if local_port == server.port and remote_port == client_port:
            inode = fields[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in server.worker_pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return pid
    return None


class Client:
    """A keep-alive HTTP/1.1 client for one server, timing each whole request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(
        self, method: str, path: str, body: bytes | None = None, expect: int = 200
    ) -> tuple[float, bytes]:
        """Send a request; return (milliseconds until the whole body was read, body)."""
        headers = {"Accept": FHIR_JSON}
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        for attempt in range(2):
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                if attempt:
                    raise
                self.connection.close()
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != expect:
                raise RuntimeError(f"{method} {path} -> {response.status}: {data[:500]!r}")
            return elapsed, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


# -- measurement -----------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


@dataclass
class Latency:
    """Summary of one kind of request."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        """Summarize samples in milliseconds."""
        return cls(
            len(samples),
            round(percentile(samples, 0.50), 3),
            round(percentile(samples, 0.95), 3),
            round(percentile(samples, 0.99), 3),
            round(sum(samples) / len(samples), 3),
        )


@dataclass
class SizeResult:
    """Everything measured at one database size."""

    size: int
    patients: int
    load_s: float
    plan_cache_mode: str
    bare: Latency
    read: Latency
    search: Latency
    read_ratio_p50: float
    search_ratio_p50: float
    search_entries_mean: float
    search_entries_min: int
    search_entries_max: int
    creates_per_s: float
    create: Latency
    explain: dict[str, Any] = field(default_factory=dict)


def measure(
    bare_port: int, fhir_port: int, data: Dataset, rounds: int, warmup: int, creates: int, seed: int
) -> tuple[list[float], list[float], list[float], list[int], list[float], float]:
    """Interleaved rounds of bare / read / search, then sequential creates."""
    rng = random.Random(seed)
    bare, fhir = Client(bare_port), Client(fhir_port)
    samples: dict[str, list[float]] = {"bare": [], "read": [], "search": []}
    entries: list[int] = []

    def do_bare() -> tuple[float, bytes]:
        return bare.request("GET", "/ping")

    def do_read() -> tuple[float, bytes]:
        return fhir.request("GET", f"/fhir/DiagnosticReport/{rng.choice(data.report_ids)}")

    def do_search() -> tuple[float, bytes]:
        query = "&".join(f"{k}={v}" for k, v in search_params(rng, data))
        return fhir.request("GET", f"/fhir/DiagnosticReport?{query}")

    kinds: list[tuple[str, Callable[[], tuple[float, bytes]]]] = [
        ("bare", do_bare),
        ("read", do_read),
        ("search", do_search),
    ]
    try:
        for round_no in range(warmup + rounds):
            rng.shuffle(kinds)
            for kind, call in kinds:
                elapsed, body = call()
                if round_no < warmup:
                    continue
                samples[kind].append(elapsed)
                if kind == "search":
                    entries.append(len(orjson.loads(body).get("entry", [])))
        create_ms: list[float] = []
        for i in range(warmup // 10 + creates):
            report = report_resource(rng, rng.choice(data.patients))
            elapsed, _ = fhir.request(
                "POST", "/fhir/DiagnosticReport", orjson.dumps(report), expect=201
            )
            if i >= warmup // 10:
                create_ms.append(elapsed)
        wall = sum(create_ms) / 1000
    finally:
        bare.close()
        fhir.close()
    return samples["bare"], samples["read"], samples["search"], entries, create_ms, wall


# -- explain ---------------------------------------------------------------------------
_SCAN = re.compile(
    r"(Seq Scan on \S+|(?:Index|Index Only) Scan(?: Backward)? using \S+ on \S+"
    r"|Bitmap Index Scan on \S+|Bitmap Heap Scan on \S+)"
)


def _plan_summary(plan: list[str]) -> dict[str, Any]:
    return {
        "plan": plan,
        "scans": sorted({m.group(1) for line in plan for m in _SCAN.finditer(line)}),
        "execution_time": next((x for x in plan if x.startswith("Execution Time")), ""),
    }


def explain_search(
    engine: Engine, registry: SearchRegistry, params: list[tuple[str, str]]
) -> dict[str, Any]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the SQL the store runs for ``params``, twice.

    ``custom``: planned for these values (a one-off execution, what ``EXPLAIN`` of the
    literal SQL shows).  ``generic``: planned without the values, which is what
    PostgreSQL may switch to once psycopg has prepared the statement (psycopg prepares a
    query server-side after ``prepare_threshold`` = 5 executions on a connection, and
    the server then uses a generic plan when its estimated cost looks no worse).
    """
    query = parse_query(
        registry, "DiagnosticReport", params, strict=True, default_count=20, max_count=1000
    )
    statement = sql.page(query, BASE_URL)
    compiled = statement.compile(dialect=engine.dialect)
    text_sql = str(compiled)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", text_sql)))
    dollar_sql = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", text_sql)
    values = [compiled.params[name] for name in names]
    with engine.connect() as connection:
        custom = [
            row[0]
            for row in connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {text_sql}", compiled.params
            )
        ]
        raw = connection.connection.driver_connection
        assert isinstance(raw, psycopg.Connection), "the benchmark needs psycopg 3"
        with psycopg.ClientCursor(raw) as cursor:
            cursor.execute(f"PREPARE bench_search AS {dollar_sql}")
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            marks = ", ".join(["%s"] * len(values))
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_search({marks})", values)
            generic = [row[0] for row in cursor.fetchall()]
            cursor.execute("DEALLOCATE bench_search")
            cursor.execute("RESET plan_cache_mode")
        connection.rollback()
    try:
        literal = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        shown = str(literal)
    except Exception:  # literal rendering is only for display
        shown = f"{compiled}\n-- params: {compiled.params}"
    return {
        "params": params,
        "sql": shown,
        "custom": _plan_summary(custom),
        "generic": _plan_summary(generic),
    }


# -- reporting -------------------------------------------------------------------------
def print_size(result: SizeResult) -> None:
    """The table of one size."""
    rows = [
        ("bare GET /ping", result.bare, "1.00x", ""),
        ("read GET DiagnosticReport/{id}", result.read, f"{result.read_ratio_p50:.2f}x", ""),
        (
            "search patient+category+date=ge",
            result.search,
            f"{result.search_ratio_p50:.2f}x",
            f"entries mean {result.search_entries_mean:.1f} "
            f"[{result.search_entries_min}-{result.search_entries_max}]",
        ),
        ("create POST DiagnosticReport", result.create, "", f"{result.creates_per_s:.0f} req/s"),
    ]
    title = (
        f"size {result.size:,} DiagnosticReports / {result.patients:,} patients "
        f"(load {result.load_s:.0f}s), plan_cache_mode={result.plan_cache_mode}"
    )
    print(f"\n{title}")
    header = f"{'request':<34}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p50/bare':>10}  note"
    print(header)
    print("-" * (len(header) + 30))
    for label, lat, ratio, note in rows:
        print(
            f"{label:<34}{lat.n:>6}{lat.p50_ms:>9.2f}{lat.p95_ms:>9.2f}{lat.p99_ms:>9.2f}"
            f"{ratio:>10}  {note}"
        )


def print_summary(results: list[SizeResult], mode: str) -> dict[str, Any]:
    """The summary table over sizes and the goal checks; returns the checks."""
    print(f"\nsummary (ms), plan_cache_mode={mode}")
    header = (
        f"{'size':>9}{'bare p50':>10}{'bare p95':>10}{'read p50':>10}{'read p95':>10}"
        f"{'read/bare':>11}{'srch p50':>10}{'srch p95':>10}{'srch/bare':>11}{'creates/s':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.size:>9,}{r.bare.p50_ms:>10.2f}{r.bare.p95_ms:>10.2f}{r.read.p50_ms:>10.2f}"
            f"{r.read.p95_ms:>10.2f}{r.read_ratio_p50:>10.2f}x{r.search.p50_ms:>10.2f}"
            f"{r.search.p95_ms:>10.2f}{r.search_ratio_p50:>10.2f}x{r.creates_per_s:>11.0f}"
        )
    first, last = results[0], results[-1]
    growth = last.search.p95_ms / first.search.p95_ms
    p50_growth = last.search.p50_ms / first.search.p50_ms
    print(
        f"\nsearch p95 growth {last.size:,}/{first.size:,}: {growth:.2f}x "
        f"(p50 growth {p50_growth:.2f}x)"
    )
    worst_p95 = max(r.search.p95_ms for r in results)
    worst_ratio = max(r.read_ratio_p50 for r in results)
    checks = {
        f"search p95 < {GOAL_SEARCH_P95_MS:g} ms (worst {worst_p95:.2f} ms)": worst_p95
        < GOAL_SEARCH_P95_MS,
        f"search p95 growth < {GOAL_SEARCH_GROWTH:g}x (got {growth:.2f}x)": growth
        < GOAL_SEARCH_GROWTH,
        f"read p50 within {GOAL_READ_RATIO:g}x of bare (worst {worst_ratio:.2f}x)": worst_ratio
        <= GOAL_READ_RATIO,
    }
    print(f"\ngoals (plan_cache_mode={mode})")
    for label, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}")
    return {"search_p95_growth": round(growth, 3), "checks": checks}


def print_explain(size: int, explained: dict[str, Any], full: bool = True) -> None:
    """The plans of the representative search."""
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of one search at {size:,}")
    print("params: " + "&".join(f"{k}={v}" for k, v in explained["params"]))
    for kind, what in (
        ("custom", "planned for the values (one-off query)"),
        ("generic", "planned without the values (prepared statement, generic plan)"),
    ):
        summary = explained[kind]
        print(f"\n[{kind} plan] {what}: {summary['execution_time']}")
        for scan in summary["scans"]:
            print(f"  - {scan}")
        if full:
            for line in summary["plan"]:
                print(f"    {line}")


# -- main ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        help="admin database URL; the scratch database is created next to it",
    )
    parser.add_argument("--per-patient", type=int, default=100, help="reports per patient")
    parser.add_argument("--batch", type=int, default=500, help="creates per load transaction")
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per kind")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up rounds per size")
    parser.add_argument("--creates", type=int, default=300, help="sequential POSTs per size")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--no-analyze", action="store_true", help="skip VACUUM ANALYZE after each load"
    )
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--plan-cache-modes",
        nargs="+",
        choices=["auto", "force_custom_plan", "force_generic_plan"],
        default=["auto"],
        help="measure the API once per PostgreSQL plan_cache_mode (set on the scratch "
        "database); 'auto' is the server default, the goals are judged on the first",
    )
    return parser.parse_args(argv)


def measure_size(
    args: argparse.Namespace,
    env: dict[str, str],
    log_dir: Path,
    data: Dataset,
    size: int,
    load_s: float,
    mode: str,
) -> SizeResult:
    """Start fresh servers (so every pooled connection sees ``mode``), measure, stop them."""
    servers: list[Server] = []
    try:
        servers.append(
            start_server("bare", "wsgi_apps:bare_app()", env, args.threads, log_dir, "/ping")
        )
        servers.append(
            start_server("fhir", "wsgi_apps:fhir_app()", env, args.threads, log_dir, "/healthz")
        )
        print(
            f"  measuring {args.requests} rounds of bare/read/search, plan_cache_mode={mode} ...",
            flush=True,
        )
        bare, read, search, entries, create_ms, wall = measure(
            servers[0].port,
            servers[1].port,
            data,
            args.requests,
            args.warmup,
            args.creates,
            args.seed + size,
        )
    finally:
        for server in servers:
            server.stop()
    return SizeResult(
        size=size,
        patients=len(data.patients),
        load_s=round(load_s, 1),
        plan_cache_mode=mode,
        bare=Latency.of(bare),
        read=Latency.of(read),
        search=Latency.of(search),
        read_ratio_p50=round(percentile(read, 0.5) / percentile(bare, 0.5), 3),
        search_ratio_p50=round(percentile(search, 0.5) / percentile(bare, 0.5), 3),
        search_entries_mean=round(sum(entries) / len(entries), 2),
        search_entries_min=min(entries),
        search_entries_max=max(entries),
        creates_per_s=round(len(create_ms) / wall, 1),
        create=Latency.of(create_ms),
    )


def set_plan_cache_mode(engine: Engine, mode: str) -> None:
    """``ALTER DATABASE .. SET plan_cache_mode``: new connections of the app pick it up."""
    name = engine.url.database
    value = "DEFAULT" if mode == "auto" else mode
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET plan_cache_mode = {value}'))


def run(args: argparse.Namespace) -> int:
    sizes = sorted(set(args.sizes))
    modes = list(dict.fromkeys(args.plan_cache_modes))
    registry = SearchRegistry.load()
    data = Dataset()
    results: list[SizeResult] = []
    with (
        scratch_database(args.pg_url, args.keep) as db_url,
        tempfile.TemporaryDirectory(prefix="fhir_ai_bench_") as tmp,
    ):
        settings = Settings(database_url=db_url, data_dir=Path(tmp), log_level="WARNING")
        engine = create_db_engine(settings)
        upgrade_schema(engine)
        store = ResourceStore(engine, registry)
        env = dict(os.environ)
        env.update(
            FHIR_AI_DATABASE_URL=db_url,
            FHIR_AI_DATA_DIR=tmp,
            FHIR_AI_LOG_LEVEL="WARNING",
            FHIR_AI_AUTO_MIGRATE="false",
            # The API itself is measured: no identity provider here, so bearer-token checks
            # are off. The audit trail stays on (an AuditEvent is written per request).
            FHIR_AI_FHIR_AUTH="off",
            FHIR_AI_CDS_AUTH="off",
        )
        try:
            for size in sizes:
                print(f"\n== growing to {size:,} DiagnosticReports", flush=True)
                started = time.perf_counter()
                load(store, data, size, args.per_patient, args.batch, args.seed)
                if not args.no_analyze:
                    vacuum_analyze(engine)
                load_s = time.perf_counter() - started
                explained = explain_search(
                    engine, registry, search_params(random.Random(args.seed), data)
                )
                for mode in modes:
                    set_plan_cache_mode(engine, mode)
                    result = measure_size(args, env, Path(tmp), data, size, load_s, mode)
                    result.explain = explained
                    results.append(result)
                    print_size(result)
                print_explain(size, explained, full=False)
        finally:
            with contextlib.suppress(Exception):
                set_plan_cache_mode(engine, "auto")
            engine.dispose()
    print(f"\n{'=' * 100}")
    for result in results:
        print_size(result)
    print(f"\nSQL of the representative search:\n{results[-1].explain['sql']}")
    print_explain(results[-1].size, results[-1].explain)
    summaries = {}
    for mode in modes:
        summaries[mode] = print_summary([r for r in results if r.plan_cache_mode == mode], mode)
    if not args.no_json:
        write_results("fhir_api", args, results, summary=summaries)
    # The goals are judged on the first mode (by default the server as it is configured).
    return 0 if all(summaries[modes[0]]["checks"].values()) else 1


def write_results(name: str, args: argparse.Namespace, results: list[Any], **extra: Any) -> None:
    """Write a run's arguments, machine and results to ``bench/results/<name>-<time>.json``."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    payload = {
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": [asdict(r) for r in results],
        **extra,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nresults written to {path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
