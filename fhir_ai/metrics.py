"""Prometheus metrics: request latency per route and CDS Hooks feedback from the database.

``GET /metrics`` answers in the Prometheus text format. It is deliberately **not** behind
the CDS or FHIR authentication, so that Prometheus can scrape it from the internal
network; it must therefore **never be exposed publicly** (block ``/metrics`` at the
ingress or reverse proxy and let only the monitoring network reach it).

The output carries **no PHI**: requests are labelled by HTTP method, the Flask route
*template* (``/fhir/<resource_type>/<resource_id>``, never the raw path, whose ids and
query string may identify a patient) and status code; the CDS metrics are labelled only
by service id (from the product's service registry) and feedback outcome.

Metrics:

* ``fhir_ai_http_request_duration_seconds{method, route, status}`` -- histogram, 5 ms to
  5 s.
* ``fhir_ai_http_requests_in_progress`` -- requests being answered now, the scrape itself
  included (gauge; summed over the live server processes).
* ``fhir_ai_cds_feedback_total{service, outcome}`` -- feedback items received (counter).
* ``fhir_ai_cds_cards_total{service,indicator}`` -- cards issued (counter).
* ``fhir_ai_cds_feedback_accept_ratio{service}`` -- accepted / (accepted + overridden),
  only for services with such feedback (gauge).

The CDS metrics are read from the database at scrape time, so they are the same whichever
worker process answers. When the database cannot be read they are left out of the scrape
(and a warning is logged) rather than failing it.

Several server processes: ``fhir-ai serve`` runs gunicorn with several worker processes,
each answering some of the requests. It therefore runs prometheus_client's multiprocess
mode (:mod:`fhir_ai.metrics_multiprocess`): ``PROMETHEUS_MULTIPROC_DIR`` names a folder,
set before prometheus_client is first imported, where every process writes its samples;
a scrape, whichever process answers it, merges the files of all of them (and of those that
have ended: counts never go back), and the gauge counts only live processes (gunicorn's
``child_exit`` hook drops a dead worker's gauge file). Without that variable (tests, the
Flask development server, a single process) the metrics live in the process's memory.

There is no module-level state: :func:`create_metrics` builds a fresh
:class:`~prometheus_client.CollectorRegistry` per application.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.metrics_multiprocess import multiprocess_dir
from fhir_ai.store.cds import CdsStore

logger = logging.getLogger("fhir_ai.metrics")

EXTENSION_KEY = "fhir_ai.metrics"
UNMATCHED_ROUTE = "unmatched"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STARTED = "_metrics_started"
_IN_PROGRESS = "_metrics_in_progress"


class CdsCollector(Collector):
    """CDS Hooks card and feedback counts, queried from the database on every scrape."""

    def __init__(self, store: CdsStore) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        """The metric families (without samples), so registration touches no database."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """Current counts; nothing (and a logged warning) when the database fails."""
        try:
            feedback = self.store.feedback_counts()
            cards = self.store.card_counts()
        except SQLAlchemyError as error:
            # The error type only: messages can carry connection URLs.
            logger.warning(
                "CDS metrics unavailable: database error",
                extra={"error": type(error).__name__},
            )
            return []
        return self._families(feedback, cards)

    @staticmethod
    def _families(
        feedback: dict[tuple[str, str], int] | None = None,
        cards: dict[tuple[str, str], int] | None = None,
    ) -> list[Metric]:
        feedback_total = CounterMetricFamily(
            "fhir_ai_cds_feedback_total",
            "CDS Hooks feedback items received, by service and outcome.",
            labels=("service", "outcome"),
        )
        cards_total = CounterMetricFamily(
            "fhir_ai_cds_cards_total",
            "CDS Hooks cards issued, by service and indicator.",
            labels=("service", "indicator"),
        )
        accept_ratio = GaugeMetricFamily(
            "fhir_ai_cds_feedback_accept_ratio",
            "Accepted / (accepted + overridden) CDS Hooks feedback, by service.",
            labels=("service",),
        )
        outcomes: dict[str, dict[str, int]] = {}
        for (service, outcome), count in sorted((feedback or {}).items()):
            feedback_total.add_metric((service, outcome), count)
            outcomes.setdefault(service, {})[outcome] = count
        for (service, indicator), count in sorted((cards or {}).items()):
            cards_total.add_metric((service, indicator), count)
        for service, counts in outcomes.items():
            accepted = counts.get("accepted", 0)
            decided = accepted + counts.get("overridden", 0)
            if decided:
                accept_ratio.add_metric((service,), accepted / decided)
        return [feedback_total, cards_total, accept_ratio]


class AppMetrics:
    """One application's metrics registry and the metric objects it records."""

    def __init__(
        self, registry: CollectorRegistry, request_duration: Histogram, in_progress: Gauge
    ) -> None:
        self.registry = registry
        self.request_duration = request_duration
        self.in_progress = in_progress

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        method = method if method in _KNOWN_METHODS else "other"
        self.request_duration.labels(method=method, route=route, status=str(status)).observe(
            seconds
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def create_metrics(engine: Engine) -> AppMetrics:
    """A fresh registry with the request metrics and the CDS database collector.

    In multiprocess mode the request metrics are registered nowhere: their samples go to
    this process's files, and the registry scrapes every process's files instead.
    """
    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    own = None if folder is not None else registry
    request_duration = Histogram(
        "fhir_ai_http_request_duration_seconds",
        "HTTP request duration, by method, route template and status.",
        labelnames=("method", "route", "status"),
        buckets=REQUEST_BUCKETS,
        registry=own,
    )
    in_progress = Gauge(
        "fhir_ai_http_requests_in_progress",
        "HTTP requests being answered, the scrape included (live server processes).",
        registry=own,
        multiprocess_mode="livesum",
    )
    registry.register(CdsCollector(CdsStore(engine)))
    return AppMetrics(registry, request_duration, in_progress)


def create_metrics_blueprint(metrics: AppMetrics) -> Blueprint:
    """``GET /metrics`` (unauthenticated: internal network only, see the module docs)."""
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    def scrape() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE_LATEST)

    return blueprint


def register_metrics(app: Flask, metrics: AppMetrics) -> None:
    """Time every request, and serve ``/metrics`` from ``metrics``."""
    app.extensions[EXTENSION_KEY] = metrics

    @app.before_request
    def start_metrics_timer() -> None:
        setattr(g, _STARTED, time.perf_counter())
        metrics.in_progress.inc()
        setattr(g, _IN_PROGRESS, True)

    @app.teardown_request
    def end_in_progress(_error: BaseException | None) -> None:
        if g.pop(_IN_PROGRESS, False):  # also after an unhandled error (no after_request)
            metrics.in_progress.dec()

    @app.after_request
    def observe_request(response: Response) -> Response:
        started: float | None = g.get(_STARTED)
        if started is not None:  # None when an earlier before_request answered first
            rule = request.url_rule
            metrics.observe_request(
                request.method,
                rule.rule if rule is not None else UNMATCHED_ROUTE,
                response.status_code,
                time.perf_counter() - started,
            )
        return response

    app.register_blueprint(create_metrics_blueprint(metrics))
