"""The workers' periodic pending-jobs sweep clock."""

from __future__ import annotations

import time

from workers.signals import _SweepClock


def test_the_sweep_is_due_after_its_period_and_not_before() -> None:
    clock = _SweepClock(every_s=0.05)
    assert not clock.due()
    time.sleep(0.06)
    assert clock.due()
    clock.sent()
    assert not clock.due()
