"""``fhir-ai jobs ...`` and ``fhir-ai fleet ...``: operating the worker fleet.

No worker code is imported: these commands talk to the broker, the workers (Celery remote
control) and the store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from fhir_ai.logging import configure_logging
from fhir_ai.settings import Settings

if TYPE_CHECKING:
    from fhir_ai.jobs.queue import CeleryJobQueue
    from fhir_ai.jobs.service import JobService


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if not settings.broker_url:
        raise click.ClickException(
            "FHIR_AI_BROKER_URL is not set: these commands need the fleet's broker "
            "(with the embedded broker of `fhir-ai serve`, jobs are resent on its next start)."
        )
    return settings


@contextmanager
def _jobs(settings: Settings) -> Iterator[tuple[JobService, CeleryJobQueue]]:
    from fhir_ai.fhir.search.parameters import SearchRegistry
    from fhir_ai.fhir.service import FhirService
    from fhir_ai.jobs.queue import CeleryJobQueue
    from fhir_ai.jobs.service import JobService
    from fhir_ai.store.database import create_db_engine
    from fhir_ai.store.repository import ResourceStore

    engine = create_db_engine(settings)
    registry = SearchRegistry.load()
    queue = CeleryJobQueue(settings)
    try:
        store = ResourceStore(engine, registry)
        yield JobService(store, FhirService(registry, settings), queue), queue
    finally:
        queue.close()
        engine.dispose()


@click.group("jobs")
def jobs_group() -> None:
    """Job Tasks on the queues."""


@jobs_group.command("resend")
@click.option(
    "--stale",
    is_flag=True,
    help="Also Tasks still requested after FHIR_AI_JOB_RESEND_AFTER_S (a lost message).",
)
def jobs_resend(stale: bool) -> None:
    """Queue again the jobs whose Task is requested but not on the queue."""
    from fhir_ai.jobs.resend import resend_pending

    settings = _settings()
    with _jobs(settings) as (jobs, _queue):
        report = resend_pending(jobs, settings.job_resend_after_s if stale else None)
    click.echo(f"{report.sent} job(s) sent again")
    if report.broker_down:
        raise click.ClickException("the broker stopped answering; run the command again later")


@jobs_group.command("probe")
@click.option("--seconds", type=click.FloatRange(0, 300), default=0.0, show_default=True)
def jobs_probe(seconds: float) -> None:
    """Submit a fleet probe job (default queue); prints its Task id."""
    from fhir_ai.jobs.probe import probe_request

    with _jobs(_settings()) as (jobs, _queue):
        submitted = jobs.submit(probe_request(uuid.uuid4().hex, seconds))
    click.echo(f"Task/{submitted.task_id}")


@click.group("fleet")
def fleet_group() -> None:
    """The worker fleet."""


@fleet_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
def fleet_status(as_json: bool) -> None:
    """Queue depths, live workers and their running tasks, job Tasks by state."""
    from fhir_ai.fleet import collect, render_table

    settings = _settings()
    with _jobs(settings) as (jobs, queue):
        status = collect(settings.broker_url or "", queue.control, jobs.store, jobs.fhir)
    click.echo(json.dumps(status.as_json(), indent=2) if as_json else render_table(status))
