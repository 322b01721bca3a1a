"""Replay protection: remember each (iss, jti) until its token can no longer be valid.

``ReplayCache`` is the port. ``seen_before`` must record and report atomically, so two
concurrent requests carrying the same token cannot both pass. Adapters: Redis
(``SET NX EX``; shared by every web process), the application database
(:class:`fhir_ai.store.replay.SqlReplayCache`, when there is no Redis) and in-memory
(one process, tests).
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from fhir_ai.errors import ServiceUnavailable


class ReplayCache(Protocol):
    """Port: one-time use of JWT ids."""

    def seen_before(self, iss: str, jti: str, expires_at: int) -> bool:
        """Record ``(iss, jti)`` until ``expires_at`` (epoch seconds); True if already there.

        Raises ``ServiceUnavailable`` when the store cannot be reached (fail closed).
        """
        ...

    def close(self) -> None:
        """Release the connections this cache opened (the application is closing)."""
        ...


def replay_key(iss: str, jti: str) -> str:
    """A fixed-length key for ``(iss, jti)``; the hash keeps odd characters out of stores."""
    return hashlib.sha256(f"{iss}\x00{jti}".encode()).hexdigest()


class RedisReplayCache:
    """Replay cache in Redis: ``SET <prefix><sha256(iss, jti)> 1 NX EX <ttl>``."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str = "fhir-ai:jti:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._clock = clock

    def seen_before(self, iss: str, jti: str, expires_at: int) -> bool:
        """Atomically record the jti; True when Redis already held it."""
        ttl = max(1, int(expires_at - self._clock()) + 1)
        try:
            created = self._client.set(self._prefix + replay_key(iss, jti), b"1", nx=True, ex=ttl)
        except redis.RedisError as error:
            raise ServiceUnavailable("replay cache unavailable") from error
        return not created

    def close(self) -> None:
        """Close the Redis client's connections."""
        self._client.close()


class InMemoryReplayCache:
    """Replay cache in this process only (tests, a single-process server); thread-safe.

    Entries are dropped once expired; at most ``max_entries`` are kept, and when full a
    new jti raises ``ServiceUnavailable`` (fail closed) rather than evicting a live one.
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def seen_before(self, iss: str, jti: str, expires_at: int) -> bool:
        """Record the jti; True when it was recorded before and has not expired."""
        key = replay_key(iss, jti)
        now = self._clock()
        with self._lock:
            while self._heap and self._heap[0][0] < now:
                _, old = heapq.heappop(self._heap)
                self._expiry.pop(old, None)
            if key in self._expiry:
                return True
            if len(self._expiry) >= self._max_entries:
                raise ServiceUnavailable("replay cache full")
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return False

    def close(self) -> None:
        """Nothing to release: the entries live in this object."""
