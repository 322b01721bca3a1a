"""The ``fhir-ai`` command: ``serve``, ``worker``, ``db upgrade``, ``jobs``, ``fleet``,
``nlp``, ``analyze``, ``train`` and ``evaluate``.

This module must not import :mod:`workers` at import time: ``fhir-ai serve`` is the
web process (gunicorn forks its workers from it).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.broker import embedded_broker, embedded_broker_db, redact_url
from fhir_ai.cli_fleet import fleet_group, jobs_group
from fhir_ai.errors import FhirAiError
from fhir_ai.imaging.model.card import MODEL_NAMES
from fhir_ai.logging import configure_logging
from fhir_ai.metrics_multiprocess import prepare_multiprocess_dir
from fhir_ai.settings import Settings
from fhir_ai.worker_health import DEFAULT_MAX_AGE_S, heartbeat_age, node_name

if TYPE_CHECKING:
    from fhir_ai.store.repository import ResourceStore

logger = logging.getLogger("fhir_ai.cli")

KNOWN_QUEUES = ("imaging", "nlp", "default")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fhir-ai")
def main() -> None:
    """Clinical AI plugin server: FHIR R4 API and Celery workers."""


def _load_settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _redacted_database_url(settings: Settings) -> str:
    return make_url(settings.resolved_database_url()).render_as_string(hide_password=True)


def _migrate(settings: Settings) -> dict[str, int]:
    """Apply pending migrations, then rebuild the search index of the resource types whose
    search parameters changed (``fhir_ai.store.index_state``); how many of each type."""
    from fhir_ai.store.database import upgrade_schema

    with _resource_store(settings) as store:
        upgrade_schema(store.engine)
        reindexed = store.refresh_index()
    logger.info("database schema is up to date: %s", _redacted_database_url(settings))
    if changed := {kind: count for kind, count in reindexed.items() if count}:
        logger.info(
            "search index rebuilt where search parameters changed: %s",
            ", ".join(f"{kind} ({count})" for kind, count in changed.items()),
        )
    return changed


def _warn_on_stale_index(settings: Settings) -> None:
    """Without automatic migrations: say when searches would miss resources."""
    with _resource_store(settings) as store:
        try:
            stale = store.stale_index_types()
        except SQLAlchemyError:
            logger.warning("the database schema is not current: run `fhir-ai db upgrade`")
            return
    if stale:
        logger.warning(
            "the search index of %d resource types predates their search parameters "
            "(searches miss older resources): run `fhir-ai db upgrade`",
            len(stale),
        )


@contextmanager
def _resource_store(settings: Settings) -> Iterator[ResourceStore]:
    from fhir_ai.fhir.search.parameters import SearchRegistry
    from fhir_ai.store.database import create_db_engine
    from fhir_ai.store.repository import ResourceStore

    engine = create_db_engine(settings)
    try:
        yield ResourceStore(engine, SearchRegistry.load())
    finally:
        engine.dispose()


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so cleanup runs (until gunicorn installs its own)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--no-worker", is_flag=True, help="Do not start the embedded Celery worker (embedded broker)."
)
def serve(host: str, port: int, workers: int, threads: int, no_worker: bool) -> None:
    """Run the web server under gunicorn (gthread workers).

    Without FHIR_AI_BROKER_URL it also runs an embedded Redis broker (under the data
    directory) and an embedded Celery worker subprocess, and stops both on exit.
    """
    _exit_on_sigterm()
    settings = _load_settings()
    # Before prometheus_client is imported (by the app): the gunicorn workers' metrics
    # are merged through this folder (fhir_ai.metrics_multiprocess).
    metrics_dir = prepare_multiprocess_dir(settings.data_dir)

    from fhir_ai.app import create_app
    from fhir_ai.embedded_worker import EMBEDDED_QUEUES, embedded_worker
    from fhir_ai.server import gunicorn_options, run_server

    if settings.auto_migrate:
        _migrate(settings)
    else:
        _warn_on_stale_index(settings)
    with ExitStack() as stack:
        if settings.embedded_broker():
            url = stack.enter_context(embedded_broker(settings))
            broker = f"embedded redis ({embedded_broker_db(settings)})"
            settings = settings.model_copy(update={"broker_url": url})
            if no_worker:
                worker_mode = "none (--no-worker)"
            else:
                process = stack.enter_context(embedded_worker(url, settings.log_level))
                queues = ",".join(EMBEDDED_QUEUES)
                worker_mode = f"embedded subprocess pid {process.pid} (solo pool, queues {queues})"
        else:
            broker = redact_url(settings.broker_url or "")
            worker_mode = "external (run `fhir-ai worker`)"
        logger.info(
            "starting fhir-ai on %s:%d; database: %s; broker: %s; worker: %s; metrics: %s",
            host,
            port,
            _redacted_database_url(settings),
            broker,
            worker_mode,
            metrics_dir,
        )
        options = gunicorn_options(host, port, workers, threads, settings.log_level, True)
        run_server(partial(create_app, settings), options)


@main.command()
@click.option(
    "--queues",
    default=",".join(KNOWN_QUEUES),
    show_default=True,
    help="Comma-separated queues to consume.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Pool size.")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
)
@click.option(
    "--pool-start-method",
    type=click.Choice(["fork", "spawn"]),
    default=None,
    help="How prefork children start (spawn: a fresh interpreter each; CUDA-safe).",
)
@click.option("--loglevel", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None)
@click.option("--hostname", default=None, help="Node name, e.g. imaging@%h.")
@click.option(
    "--healthcheck",
    is_flag=True,
    help="Do not run a worker: exit 0 if the worker --hostname has a fresh heartbeat.",
)
@click.option(
    "--max-age", type=click.FloatRange(min=1), default=DEFAULT_MAX_AGE_S, show_default=True
)
def worker(
    queues: str,
    concurrency: int | None,
    pool: str,
    pool_start_method: str | None,
    loglevel: str | None,
    hostname: str | None,
    healthcheck: bool,
    max_age: float,
) -> None:
    """Run a Celery worker (needs FHIR_AI_BROKER_URL), or check one (--healthcheck)."""
    settings = _load_settings()
    if healthcheck:
        _check_heartbeat(settings, hostname, max_age)
        return
    if not settings.broker_url:
        raise click.ClickException(
            "FHIR_AI_BROKER_URL is not set. A standalone worker needs the broker URL, "
            "for example FHIR_AI_BROKER_URL=redis://127.0.0.1:6379/0 "
            "(`fhir-ai serve` runs an embedded broker and worker when it is unset)."
        )
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(KNOWN_QUEUES))
    if not names or unknown:
        raise click.BadParameter(f"unknown queue(s) {unknown}; known: {KNOWN_QUEUES}")

    from workers.celery_app import make_worker_celery

    argv = ["worker", "--queues", ",".join(names), "--pool", pool]
    argv += ["--loglevel", (loglevel or settings.log_level).upper()]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if pool_start_method:
        argv += ["--pool-start-method", pool_start_method]
    if hostname:
        argv += ["--hostname", hostname]
    logger.info(
        "starting worker; broker: %s; queues: %s; pool: %s",
        redact_url(settings.broker_url),
        ",".join(names),
        pool,
    )
    make_worker_celery(settings).worker_main(argv)


def _check_heartbeat(settings: Settings, hostname: str | None, max_age: float) -> None:
    node = node_name(hostname)
    age = heartbeat_age(settings.heartbeat_dir(), node)
    if age is None or age > max_age:
        seen = "never" if age is None else f"{age:.0f} s ago"
        raise click.ClickException(f"worker {node}: last heartbeat {seen}")
    click.echo(f"worker {node}: heartbeat {age:.1f} s ago")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration, and rebuild the search index where an upgrade
    changed search parameters."""
    reindexed = _migrate(_load_settings())
    click.echo("database schema is up to date")
    for kind, count in reindexed.items():
        click.echo(f"search index rebuilt: {count} {kind} resources (its parameters changed)")


@db.command("reindex")
@click.option("--type", "resource_type", default=None, help="Only resources of this type.")
def db_reindex(resource_type: str | None) -> None:
    """Extract every resource's search index again, whatever its fingerprint (``db upgrade``
    does it for exactly the types whose search parameters changed)."""
    with _resource_store(_load_settings()) as store:
        count = store.reindex(resource_type)
    click.echo(
        f"reindexed {count} resources" + (f" of type {resource_type}" if resource_type else "")
    )


_DEVICES = click.Choice(["auto", "cpu", "cuda"])


@contextmanager
def _as_click_errors() -> Iterator[None]:
    try:
        yield
    except FhirAiError as error:
        raise click.ClickException(error.message) from error


@main.command()
@click.argument("model", type=click.Choice(MODEL_NAMES))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: the packaged weights folder of MODEL].",
)
@click.option("--seed", type=int, default=None, help="Seed [default: the model's registered seed].")
@click.option("--device", type=_DEVICES, default="auto", show_default=True)
@click.option(
    "--cross-fit",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Train every image but own test (and val, if the model calibrates on it) into the "
    "members, and fit calibration and threshold on out-of-fold logits of K-fold cross-fitting "
    "instead of a held-out share of train (for small local data sets).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, hidden=True)
@click.option("--members", type=click.IntRange(min=1), default=None, hidden=True)
@click.option("--limit", type=click.IntRange(min=10), default=None, hidden=True)
def train(
    model: str,
    data: Path,
    out: Path | None,
    seed: int | None,
    device: str,
    cross_fit: int | None,
    epochs: int | None,
    members: int | None,
    limit: int | None,
) -> None:
    """Train MODEL on a MedMNIST npz and write its weights and model card."""
    from fhir_ai.imaging.model.cli import run_train

    _load_settings()
    with _as_click_errors():
        run_train(model, data, out, seed, device, (epochs, members, limit, cross_fit))


@main.command()
@click.argument("model", type=click.Choice(MODEL_NAMES))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["val", "test"]), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--device", type=_DEVICES, default="auto", show_default=True)
@click.option(
    "--weights",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    hidden=True,
)
def evaluate(
    model: str, data: Path, split: str, as_json: bool, device: str, weights: Path | None
) -> None:
    """Evaluate MODEL on the val or test split of a MedMNIST npz."""
    from fhir_ai.imaging.model.cli import run_evaluate

    with _as_click_errors():
        click.echo(run_evaluate(model, data, split, device, weights, as_json=as_json))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", default=None, help="Use this model for every image (skip routing).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fhir-ai-reports"),
    show_default=True,
    help="Folder for the result Bundles (one per study and model).",
)
def analyze(paths: tuple[Path, ...], model: str | None, out: Path) -> None:
    """Analyse DICOM files and folders offline; write the DiagnosticReports as JSON."""
    from fhir_ai.imaging.offline import run  # deferred: torch loads only for this command

    rows = run(list(paths), model, out)
    if rows and all(r.outcome in ("refused", "skipped") for r in rows):
        raise SystemExit(1)


class _LazyNlpGroup(click.Group):
    """``fhir-ai nlp``: its commands (and spaCy) load only when it is invoked."""

    def _group(self) -> click.Group:
        from fhir_ai.nlp.cli import nlp

        return nlp

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


main.add_command(jobs_group)
main.add_command(fleet_group)
main.add_command(_LazyNlpGroup("nlp", help="Clinical NLP tools (JSON lines on stdin and stdout)."))


if __name__ == "__main__":
    main()
