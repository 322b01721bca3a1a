"""Replay caches: in-memory, and Redis at FHIR_AI_TEST_REDIS_URL (skipped when down)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from unittest.mock import Mock

import pytest
import redis

from fhir_ai.errors import ServiceUnavailable
from fhir_ai.security.cds_jwt import InMemoryReplayCache, RedisReplayCache
from fhir_ai.security.replay import replay_key

from .conftest import FakeClock

REDIS_URL = os.environ.get("FHIR_AI_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def test_in_memory_records_once_until_expiry() -> None:
    clock = FakeClock(now=1000.0)
    cache = InMemoryReplayCache(clock=clock)
    assert cache.seen_before("iss", "a", 1100) is False
    assert cache.seen_before("iss", "a", 1100) is True
    assert cache.seen_before("other-iss", "a", 1100) is False
    clock.now = 1101
    assert cache.seen_before("iss", "a", 1200) is False
    assert cache.seen_before("iss", "a", 1200) is True


def test_in_memory_fails_closed_when_full() -> None:
    cache = InMemoryReplayCache(max_entries=2, clock=FakeClock(now=0.0))
    cache.seen_before("i", "1", 10)
    cache.seen_before("i", "2", 10)
    with pytest.raises(ServiceUnavailable):
        cache.seen_before("i", "3", 10)


def test_keys_do_not_collide_across_issuers() -> None:
    assert replay_key("a", "b:c") != replay_key("a:b", "c")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {error}")
    yield client
    client.close()


def test_redis_set_nx_with_ttl(redis_client: redis.Redis) -> None:
    prefix = f"fhir-ai-test:{uuid.uuid4().hex}:jti:"
    clock = FakeClock(now=1_000_000.0)
    cache = RedisReplayCache(redis_client, key_prefix=prefix, clock=clock)
    try:
        assert cache.seen_before("https://ehr.example", "j1", 1_000_120) is False
        assert cache.seen_before("https://ehr.example", "j1", 1_000_120) is True
        assert cache.seen_before("https://other.example", "j1", 1_000_120) is False
        keys = list(redis_client.scan_iter(match=prefix + "*"))
        assert len(keys) == 2
        assert 100 < redis_client.ttl(keys[0]) <= 121
    finally:
        for key in redis_client.scan_iter(match=prefix + "*"):
            redis_client.delete(key)


def test_redis_errors_fail_closed() -> None:
    client = Mock(spec=redis.Redis)
    client.set.side_effect = redis.ConnectionError("down")
    with pytest.raises(ServiceUnavailable):
        RedisReplayCache(client).seen_before("i", "j", 2**40)
