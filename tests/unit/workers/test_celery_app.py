"""The Celery app: routing by task-name prefix and the reliability options."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fhir_ai.errors import ConfigurationError
from fhir_ai.jobs.routing import QUEUE_NAMES, queue_for
from fhir_ai.settings import Settings
from workers.celery_app import make_celery
from workers.system import ping

BROKER = "redis://127.0.0.1:6379/9"


@pytest.fixture
def settings() -> Settings:
    return Settings(broker_url=BROKER)


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("workers.imaging.classify_chest_xray", "imaging"),
        ("workers.imaging.gradcam", "imaging"),
        ("workers.nlp.extract_problems", "nlp"),
        ("workers.system.ping", "default"),
        ("workers.imagingx", "default"),
        ("workers.nlp", "default"),
        ("some.other.task", "default"),
    ],
)
def test_task_names_route_to_queues(settings: Settings, task_name: str, queue: str) -> None:
    assert queue_for(task_name) == queue
    app = make_celery(settings)
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue


def test_queues_are_declared(settings: Settings) -> None:
    conf = make_celery(settings).conf
    assert [q.name for q in conf.task_queues] == list(QUEUE_NAMES) == ["imaging", "nlp", "default"]
    assert conf.task_default_queue == "default"


def test_reliability_options(settings: Settings) -> None:
    conf = make_celery(settings).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.result_backend_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True
    assert 0 < conf.result_expires <= 24 * 3600


def test_json_only(settings: Settings) -> None:
    conf = make_celery(settings).conf
    assert conf.task_serializer == conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_result_backend_defaults_to_broker(settings: Settings) -> None:
    assert make_celery(settings).conf.result_backend == BROKER
    explicit = Settings(broker_url=BROKER, result_backend_url="redis://127.0.0.1:6379/8")
    assert make_celery(explicit).conf.result_backend == "redis://127.0.0.1:6379/8"
    assert make_celery(explicit).conf.broker_url == BROKER


def test_broker_is_required() -> None:
    with pytest.raises(ConfigurationError, match="FHIR_AI_BROKER_URL"):
        make_celery(Settings(broker_url=None))


def test_ping_task_is_registered(settings: Settings) -> None:
    app = make_celery(settings)
    app.loader.import_default_modules()
    assert "workers.system.ping" in app.tasks


def test_ping_answers_with_hostname() -> None:
    task = SimpleNamespace(request=SimpleNamespace(hostname="embedded@host"))
    assert ping(task) == {"pong": True, "worker": "embedded@host"}
