"""The embedded broker starts and stops; probes report; URLs are redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ai.broker import broker_reachable, embedded_broker, redact_url
from fhir_ai.errors import ServiceUnavailable
from fhir_ai.settings import Settings


def test_embedded_broker_lifecycle(tmp_path: Path) -> None:
    with embedded_broker(Settings(data_dir=tmp_path)) as url:
        assert url.startswith("redis+socket://")
        socket_file = Path(url.removeprefix("redis+socket://"))
        assert socket_file.exists()
        broker_reachable(url, timeout=1.0)
    assert not socket_file.exists()
    with pytest.raises(ServiceUnavailable):
        broker_reachable(url, timeout=1.0)


def test_unreachable_broker_raises_without_url_in_message() -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        broker_reachable("redis://user:secret@127.0.0.1:1/0", timeout=0.5)
    assert caught.value.http_status == 503
    assert "secret" not in caught.value.message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
        ("redis+socket:///tmp/x/redis.sock", "redis+socket:///tmp/x/redis.sock"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
