"""fhir_ai.heap: start-up objects leave the garbage collector's generations."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from flask import Flask

from fhir_ai.heap import freeze_startup_objects
from fhir_ai.server import GunicornServer


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process keeps collecting everything, as before


@pytest.mark.usefixtures("unfrozen")
def test_objects_alive_at_start_up_are_frozen_and_later_ones_are_not() -> None:
    startup = [object() for _ in range(10)]  # noqa: F841 (kept alive through the freeze)
    assert gc.get_freeze_count() == 0

    freeze_startup_objects()
    frozen = gc.get_freeze_count()
    later = [[] for _ in range(1000)]  # noqa: F841

    assert frozen > 1000  # the interpreter, pytest and fhir_ai modules at least
    assert gc.get_freeze_count() == frozen  # what comes later stays collectable


@pytest.mark.usefixtures("unfrozen")
def test_gunicorn_workers_freeze_once_their_app_is_built() -> None:
    app = Flask("probe")
    server = GunicornServer(lambda: app, {"bind": "127.0.0.1:0"})

    assert server.load() is app
    assert gc.get_freeze_count() > 0
