"""Conditional writes racing on PostgreSQL: writers that look for the same criteria before
creating make one resource between them, not one each (the imaging worker's 16 job
threads all write their model's Device with ``ifNoneExist``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_ai.app import close_app
from tests.conftest import build_app, make_settings, scratch_postgres
from tests.dicom_helpers import distinct_studies, stow_body

pytestmark = pytest.mark.integration
WRITERS = 8


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Flask:
    return build_app(make_settings(tmp_path_factory.mktemp("races"), database_url=postgres_url))


def _race(app: Flask, write: Callable[[FlaskClient], int]) -> list[int]:
    """``write`` from WRITERS threads released at the same moment; their statuses."""
    barrier = threading.Barrier(WRITERS)

    def one(_: int) -> int:
        client = app.test_client()
        barrier.wait()
        return write(client)

    with ThreadPoolExecutor(WRITERS) as pool:
        return sorted(pool.map(one, range(WRITERS)))


def _devices(app: Flask, value: str) -> int:
    found = app.test_client().get(f"/fhir/Device?identifier=urn:race|{value}&_summary=count")
    return int(found.json["total"])


def _device(value: str) -> dict[str, Any]:
    return {"resourceType": "Device", "identifier": [{"system": "urn:race", "value": value}]}


@pytest.mark.parametrize("attempt", range(3))
def test_racing_conditional_creates_make_one_resource(app: Flask, attempt: int) -> None:
    value = uuid.uuid4().hex
    criteria = {"If-None-Exist": f"identifier=urn:race|{value}"}
    statuses = _race(
        app, lambda c: c.post("/fhir/Device", json=_device(value), headers=criteria).status_code
    )
    assert statuses == [200] * (WRITERS - 1) + [201]
    assert _devices(app, value) == 1


@pytest.mark.parametrize("attempt", range(3))
def test_racing_transaction_bundles_make_one_resource(app: Flask, attempt: int) -> None:
    value = uuid.uuid4().hex
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": _device(value),
                "request": {
                    "method": "POST",
                    "url": "Device",
                    "ifNoneExist": f"identifier=urn:race|{value}",
                },
            }
        ],
    }
    statuses = _race(app, lambda c: c.post("/fhir", json=bundle).status_code)
    assert statuses == [200] * WRITERS
    assert _devices(app, value) == 1


@pytest.mark.parametrize("attempt", range(3))
def test_racing_conditional_updates_make_one_resource(app: Flask, attempt: int) -> None:
    value = uuid.uuid4().hex
    url = f"/fhir/Device?identifier=urn:race|{value}"
    statuses = _race(app, lambda c: c.put(url, json=_device(value)).status_code)
    assert statuses == [200] * (WRITERS - 1) + [201]
    assert _devices(app, value) == 1


@pytest.fixture
def empty_app(tmp_path: Path) -> Iterator[Flask]:
    """An app on a PostgreSQL database of its own (no Endpoint yet)."""
    with scratch_postgres("fhir_ai_race") as url:
        app = build_app(make_settings(tmp_path, database_url=url))
        yield app
        close_app(app)  # its audit events written, before the database goes


def test_first_studies_stored_at_once_share_one_endpoint(
    empty_app: Flask, shared_data: Path
) -> None:
    sample = (shared_data / "dicom" / "chest_radiographs" / "highdicom_dx_image.dcm").read_bytes()
    studies = distinct_studies(sample, WRITERS, prefix="RACE")

    def store(client: FlaskClient) -> int:
        body, content_type = stow_body(studies.pop())
        return client.post("/dicomweb/studies", data=body, content_type=content_type).status_code

    assert _race(empty_app, store) == [200] * WRITERS
    endpoints = empty_app.test_client().get("/fhir/Endpoint?_summary=count").json
    assert endpoints["total"] == 1
