"""Shared fixtures: settings, apps on SQLite and on real PostgreSQL, shared data."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

from fhir_ai.app import close_app, create_app
from fhir_ai.settings import Settings
from fhir_ai.store.database import upgrade_schema

POSTGRES_ADMIN_URL = os.environ.get(
    "FHIR_AI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FHIR_AI_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data sets, read in place; tests that need them skip without them."""
    path = Path(os.environ.get("FHIR_AI_SHARED_DATA_DIR", "../shared/data")).resolve()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set FHIR_AI_SHARED_DATA_DIR)")
    return path


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new PostgreSQL database, dropped on exit (the test skips
    when PostgreSQL cannot be reached)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with scratch_postgres("fhir_ai_test") as url:
        yield url


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    """A P-384 key (ES384 signing: SMART access tokens, CDS client JWTs)."""
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key (RS384 signing)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings for a test app: data under ``tmp``, quiet logs."""
    values: dict[str, object] = {
        "data_dir": tmp,
        "log_level": "WARNING",
        "broker_url": REDIS_URL,
        "fhir_auth": "off",  # FHIR API tests call without tokens; SMART tests turn it on
        # No AI jobs unless a test runs a worker for them (see tests/worker_helpers.py)
        "analyze_on_store": False,
        "extract_on_create": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def build_app(settings: Settings) -> Flask:
    """Create the app and migrate its database."""
    app = create_app(settings)
    upgrade_schema(app.extensions["fhir_ai.engine"])
    return app


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    """The app on each storage backend (one database per session and backend), closed
    (its background writer flushed) before its database is dropped."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        app = build_app(make_settings(tmp, database_url=url))
    else:
        app = build_app(make_settings(tmp))
    yield app
    close_app(app)


@pytest.fixture
def client(backend_app: Flask) -> FlaskClient:
    """A test client on each backend."""
    return backend_app.test_client()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Flask:
    """A fresh app on its own SQLite file."""
    return build_app(make_settings(tmp_path))


@pytest.fixture
def server_url(sqlite_app: Flask) -> Iterator[str]:
    """The FHIR base URL of a fresh app served over real HTTP on a free local port."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, sqlite_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()
    thread.join(timeout=5)
