"""The jti replay cache in the application database, for servers without Redis.

One row per ``(iss, jti)`` (its SHA-256, :func:`~fhir_ai.security.replay.replay_key`)
until the token's ``exp``. Recording is one transaction: drop this key's row if it has
expired, then insert it; a unique-key violation means the token was seen (on PostgreSQL a
concurrent insert of the same key waits for the first and then fails, so two requests
carrying one token cannot both pass). Expired rows are purged at most once per
``purge_interval_s`` per process. Any database error fails closed (503).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.security.replay import replay_key
from fhir_ai.store.schema import jwt_replay


class SqlReplayCache:
    """:class:`~fhir_ai.security.replay.ReplayCache` over the ``jwt_replay`` table."""

    def __init__(
        self,
        engine: Engine,
        *,
        purge_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._purge_interval_s = purge_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_purge = 0.0

    def seen_before(self, iss: str, jti: str, expires_at: int) -> bool:
        """Record the jti until ``expires_at``; True when it is already recorded and live."""
        key = replay_key(iss, jti)
        now = int(self._clock())
        table = jwt_replay.c
        try:
            with self._engine.begin() as connection:
                if self._purge_due(now):
                    connection.execute(delete(jwt_replay).where(table.expires_at < now))
                connection.execute(
                    delete(jwt_replay).where(table.key == key, table.expires_at < now)
                )
                connection.execute(insert(jwt_replay).values(key=key, expires_at=expires_at))
        except IntegrityError:
            return True
        except SQLAlchemyError as error:
            raise ServiceUnavailable("replay cache unavailable") from error
        return False

    def _purge_due(self, now: float) -> bool:
        with self._lock:
            if now - self._last_purge < self._purge_interval_s:
                return False
            self._last_purge = now
            return True
