"""What a worker process needs, built once per process from the ``FHIR_AI_*`` settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import Engine

from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.fhir.transaction import BundleProcessor, written_references
from fhir_ai.jobs.queue import CeleryJobQueue
from fhir_ai.jobs.service import JobService
from fhir_ai.settings import Settings
from fhir_ai.store.database import create_db_engine
from fhir_ai.store.repository import ResourceStore
from fhir_ai.subscriptions.listeners import ResultListeners
from workers.time_limits import checkpoint

#: Bundles written by workers resolve conditional references against this base.
WORKER_BASE_URL = "http://localhost/fhir"


@dataclass(frozen=True, slots=True)
class WorkerRuntime:
    """The store, FHIR service, Bundle processor and job service of a worker process."""

    settings: Settings
    engine: Engine
    store: ResourceStore
    fhir: FhirService
    bundles: BundleProcessor
    jobs: JobService

    def write(self, bundle: dict[str, object]) -> list[str]:
        """Run a transaction Bundle; the ``Type/id`` of each entry, in order.

        A job's results go through here: the stage boundary where a job past its soft
        time limit stops (:class:`~workers.time_limits.JobExpired`, nothing written).
        """
        checkpoint()
        return written_references(
            self.bundles.process(bundle, WORKER_BASE_URL, with_resources=False)
        )


@cache
def worker_runtime() -> WorkerRuntime:
    """This process's runtime (a per-process cache: built on first use)."""
    settings = Settings()
    engine = create_db_engine(settings)
    registry = SearchRegistry.load()
    store = ResourceStore(engine, registry)
    fhir = FhirService(registry, settings)
    queue = CeleryJobQueue(settings)
    listeners = ResultListeners(store, fhir, queue, settings)
    return WorkerRuntime(
        settings=settings,
        engine=engine,
        store=store,
        fhir=fhir,
        bundles=BundleProcessor(fhir, store),
        jobs=JobService(store, fhir, queue, [listeners]),
    )
