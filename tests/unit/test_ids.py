"""fhir_ai.ids: time-ordered UUIDs (version 7)."""

from __future__ import annotations

import time
import uuid

from fhir_ai.ids import time_ordered_uuid


def test_a_version_7_uuid_carries_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(time_ordered_uuid())
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_later_milliseconds_sort_later_and_the_rest_is_random() -> None:
    first = [time_ordered_uuid() for _ in range(2000)]
    time.sleep(0.002)
    second = [time_ordered_uuid() for _ in range(2000)]
    assert max(first) < min(second)  # as text too: new rows land at the end of an index
    assert len(set(first + second)) == 4000
    random_parts = {uuid.UUID(u).int & ((1 << 76) - 1) for u in first}
    assert len(random_parts) == 2000
    # Both random fields vary: the 12 bits after the version and the 62 after the variant.
    assert len({(uuid.UUID(u).int >> 64) & 0xFFF for u in first}) > 1000
    assert len({uuid.UUID(u).int & ((1 << 62) - 1) for u in first}) == 2000
