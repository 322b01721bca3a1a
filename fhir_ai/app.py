"""The Flask application factory."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence

from flask import Flask, Response, g, request

from fhir_ai.audit import register_audit
from fhir_ai.cds.auth import build_authenticator
from fhir_ai.cds.blueprint import create_cds_blueprint
from fhir_ai.cds.prefetch import HttpFhirReader
from fhir_ai.cds.registry import ServiceRegistry
from fhir_ai.cds.service import CdsService
from fhir_ai.cds.services import default_services
from fhir_ai.cds.services.results import StoreResultsReader
from fhir_ai.cors import register_cors
from fhir_ai.fhir.blueprint import create_fhir_blueprint, register_fhir_error_handlers
from fhir_ai.fhir.search.parameters import SearchRegistry
from fhir_ai.fhir.service import FhirService
from fhir_ai.health import BrokerStatus, create_health_blueprint
from fhir_ai.imaging.web import build_imaging_web
from fhir_ai.jobs.queue import CeleryJobQueue
from fhir_ai.jobs.service import JobService
from fhir_ai.logging import configure_logging
from fhir_ai.metrics import create_metrics, register_metrics
from fhir_ai.nlp.web import NlpWeb
from fhir_ai.reports.links import VIEW_PATH, ReportLinks
from fhir_ai.reports.view import create_report_blueprint
from fhir_ai.security.fhir_access import register_smart_configuration
from fhir_ai.settings import Settings
from fhir_ai.store.background import BackgroundWriter
from fhir_ai.store.cds import CdsStore
from fhir_ai.store.database import create_db_engine, create_fixed_read_engine
from fhir_ai.store.repository import ResourceStore
from fhir_ai.subscriptions.activation import SubscriptionActivator
from fhir_ai.subscriptions.listeners import ResultListeners

logger = logging.getLogger("fhir_ai.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


def create_app(
    settings: Settings | None = None, cds_services: Sequence[CdsService] | None = None
) -> Flask:
    """Build the web application: blueprints, services and request logging.

    ``cds_services`` replaces the product's CDS services (for tests and plugins).
    """
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = Flask("fhir_ai")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["fhir_ai.settings"] = settings

    engine = create_db_engine(settings)
    fixed_reads = create_fixed_read_engine(settings, engine)
    registry = SearchRegistry.load()
    store = ResourceStore(engine, registry)
    service = FhirService(registry, settings)
    writer = BackgroundWriter(store)  # audit events and issued cards, off the request path
    app.extensions["fhir_ai.engine"] = engine
    app.extensions["fhir_ai.fixed_read_engine"] = fixed_reads
    app.extensions["fhir_ai.store"] = store
    app.extensions["fhir_ai.writer"] = writer

    report_links = ReportLinks.from_settings(settings)
    queue = CeleryJobQueue(settings)
    listeners = ResultListeners(store, service, queue, settings)
    jobs = JobService(store, service, queue, [listeners]) if settings.broker_url else None
    imaging = build_imaging_web(settings, engine, store, service, jobs)
    nlp = NlpWeb(settings, store, jobs, queue) if jobs else None
    app.register_blueprint(
        create_fhir_blueprint(
            service,
            store,
            settings,
            imaging.operations + (nlp.operations() if nlp else ()),
            (SubscriptionActivator(store, service), *(nlp.hooks() if nlp else ())),
        ),
        url_prefix="/fhir",
    )
    app.register_blueprint(imaging.blueprint, url_prefix="/dicomweb")
    cds_authenticator = build_authenticator(settings, engine)
    app.extensions["fhir_ai.cds_authenticator"] = cds_authenticator
    cds = create_cds_blueprint(
        ServiceRegistry(
            cds_services
            if cds_services is not None
            else default_services(
                StoreResultsReader(store, service, fixed_reads),
                settings,
                BrokerStatus(settings.broker_url),
                report_links,
            )
        ),
        cds_authenticator,
        HttpFhirReader(),
        CdsStore(engine),
        writer,
        settings,
    )
    app.register_blueprint(cds, url_prefix="/cds-services")
    app.register_blueprint(create_report_blueprint(store, report_links), url_prefix=VIEW_PATH)
    app.register_blueprint(create_health_blueprint(engine, settings))
    register_metrics(app, create_metrics(engine))  # also app.extensions["fhir_ai.metrics"]
    register_smart_configuration(app, settings)
    register_cors(app, settings.cors_origins)
    if settings.audit:
        register_audit(app, writer)
    register_fhir_error_handlers(app)
    _register_request_logging(app)
    return app


def close_app(app: Flask) -> None:
    """Release what :func:`create_app` opened: write what the background writer holds (audit
    events, issued cards), then close the database pools and the CDS replay cache's
    connections. For an app that is done before its process exits (a test's or
    benchmark's scratch database goes next)."""
    app.extensions["fhir_ai.writer"].close()
    app.extensions["fhir_ai.cds_authenticator"].close()
    for engine in ("fhir_ai.engine", "fhir_ai.fixed_read_engine"):
        app.extensions[engine].dispose()


def _register_request_logging(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        logger.info(
            "request",
            extra={
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else None,
                "status": response.status_code,
                "duration_ms": round(elapsed_ms, 2),
            },
        )
        return response
