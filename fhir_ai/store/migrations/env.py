"""Alembic environment: runs migrations on the engine handed over by the caller."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from fhir_ai.store.schema import metadata

engine: Engine | None = context.config.attributes.get("engine")
if engine is None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no engine or sqlalchemy.url given to the migrations")
    engine = create_engine(url)

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
