"""The jti replay cache in the application database, for servers without Redis.

One row per ``(iss, jti)`` (its SHA-256, :func:`~fhir_ai.security.replay.replay_key`)
until the token's ``exp``. Recording is one statement, an upsert that inserts the key, or
takes over its row only if that row has expired: no row returned means the token was seen
(on PostgreSQL a concurrent insert of the same key waits for the first, then finds it
live, so two requests carrying one token cannot both pass). One statement keeps SQLite's
write lock for the shortest time: writers of this process take turns, and one that finds
the lock held by another process tries again within a millisecond rather than in SQLite's
growing sleeps (both in ``store.database``).
Expired rows are purged at most once per ``purge_interval_s`` per process. Any database
error fails closed (503).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.security.replay import replay_key
from fhir_ai.store.schema import jwt_replay


class SqlReplayCache:
    """:class:`~fhir_ai.security.replay.ReplayCache` over the ``jwt_replay`` table."""

    def __init__(
        self,
        engine: Engine,
        *,
        owns_engine: bool = False,
        purge_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._purge_interval_s = purge_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_purge = 0.0

    def seen_before(self, iss: str, jti: str, expires_at: int) -> bool:
        """Record the jti until ``expires_at``; True when it is already recorded and live.

        On a SQLite file that another process is writing, the write waits for the lock up
        to the replay engine's busy timeout (``store.database.create_replay_engine``).
        """
        try:
            return self._record(replay_key(iss, jti), int(self._clock()), expires_at)
        except SQLAlchemyError as error:
            raise ServiceUnavailable("replay cache unavailable") from error

    def _record(self, key: str, now: int, expires_at: int) -> bool:
        table = jwt_replay.c
        with self._engine.begin() as connection:
            if self._purge_due(now):
                connection.execute(delete(jwt_replay).where(table.expires_at < now))
            upsert = _insert_for(connection.dialect.name)(jwt_replay).values(
                key=key, expires_at=expires_at
            )
            written = connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[table.key],
                    set_={"expires_at": upsert.excluded.expires_at},
                    where=table.expires_at < now,
                ).returning(table.key)
            ).first()
        return written is None

    def close(self) -> None:
        """Close the engine's pool when it is the cache's own (not the application's)."""
        if self._owns_engine:
            self._engine.dispose()

    def _purge_due(self, now: float) -> bool:
        with self._lock:
            if now - self._last_purge < self._purge_interval_s:
                return False
            self._last_purge = now
            return True


def _insert_for(dialect: str) -> Callable[..., postgresql.Insert | sqlite.Insert]:
    """The dialect's INSERT with ``ON CONFLICT`` (both databases this server runs on)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
