"""The job watchdog of the threads and solo pools: who fails an expired job's Task (once),
what a stage boundary lets through, and when a worker with a stuck job thread exits.

Real threads and the real clock with short limits; the worker-level behaviour (a real
worker on the threads pool, PostgreSQL, Redis) is in tests/integration/test_fleet_faults.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.process_helpers import wait_for
from workers.time_limits import STUCK_EXIT_STATUS, JobClock, JobState, Watchdog


@dataclass
class Calls:
    """What the watchdog asked for, in order."""

    failed: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    refusals: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_expired(self, clock: JobClock) -> None:
        with self.lock:
            if self.refusals:
                self.refusals -= 1
                raise ConnectionError("database away")
            self.failed.append(clock.task_id)

    def watchdog(self, retry_s: float = 5.0) -> Watchdog:
        return Watchdog(
            on_expired=self.on_expired,
            stop_consuming=lambda: self.events.append("stop consuming"),
            exit_process=lambda status: self.events.append(f"exit {status}"),
            retry_s=retry_s,
        )


def test_a_job_back_in_time_is_never_failed() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    clock = watchdog.watch("t1", "workers.system.probe", "probe", 0.2, 0.4)
    assert watchdog.commit(clock) and clock.state is JobState.COMMITTING
    watchdog.ended(clock)
    time.sleep(0.6)
    assert calls.failed == [] and calls.events == [] and not watchdog.jobs


def test_past_the_soft_limit_the_task_fails_once_and_results_are_refused() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    clock = watchdog.watch("t1", "workers.system.probe", "probe", 0.1, 30)
    assert wait_for(lambda: calls.failed == ["t1"], 5)
    assert clock.reason == "The probe exceeded its time limit"
    assert not watchdog.commit(clock)  # the stage boundary: nothing is written
    assert not clock.claim_failure()  # the watchdog failed the Task: the thread must not
    watchdog.ended(clock)
    time.sleep(0.2)
    assert calls.failed == ["t1"] and calls.events == []


def test_a_boundary_past_the_soft_limit_expires_the_job_and_one_side_fails_it() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    clock = watchdog.watch("t1", "workers.system.probe", "probe", 0.05, 30)
    time.sleep(0.06)
    assert not watchdog.commit(clock)  # whether or not the watchdog has looked yet
    failed_here = clock.claim_failure()
    time.sleep(0.3)
    assert len(calls.failed) + failed_here == 1
    watchdog.ended(clock)


def test_a_committing_job_is_let_finish_past_its_soft_limit() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    clock = watchdog.watch("t1", "workers.system.probe", "probe", 0.05, 30)
    assert watchdog.commit(clock)
    time.sleep(0.3)
    assert calls.failed == [] and watchdog.commit(clock)  # still allowed, not failed
    watchdog.ended(clock)


def test_failing_the_task_is_tried_again_while_the_database_is_away() -> None:
    calls = Calls(refusals=2)
    watchdog = calls.watchdog(retry_s=0.1)
    clock = watchdog.watch("t1", "workers.system.probe", "probe", 0.05, 30)
    assert wait_for(lambda: calls.failed == ["t1"], 5)
    assert calls.refusals == 0
    watchdog.ended(clock)


def test_a_stuck_job_retires_the_worker_once_its_other_jobs_have_ended() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    stuck = watchdog.watch("stuck", "workers.system.probe", "probe", 0.05, 0.1)
    other = watchdog.watch("other", "workers.imaging.analyze_study", "analysis", 30, 60)
    assert wait_for(lambda: calls.events == ["stop consuming"], 5)
    assert calls.failed == ["stuck"]
    time.sleep(0.3)
    assert calls.events == ["stop consuming"]  # "other" still runs: no exit yet
    watchdog.commit(other)
    watchdog.ended(other)
    assert wait_for(lambda: calls.events == ["stop consuming", f"exit {STUCK_EXIT_STATUS}"], 5)
    assert stuck.state is JobState.EXPIRED


def test_a_stuck_job_alone_exits_at_once() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    watchdog.watch("stuck", "workers.system.probe", "probe", 0.05, 0.1)
    assert wait_for(lambda: calls.events == [f"exit {STUCK_EXIT_STATUS}"], 5)
    assert calls.failed == ["stuck"]


def test_the_watchdog_sleeps_while_a_stuck_job_waits_for_the_others() -> None:
    calls = Calls()
    watchdog = calls.watchdog()
    watchdog.watch("stuck", "workers.system.probe", "probe", 0.05, 0.1)
    other = watchdog.watch("other", "workers.imaging.analyze_study", "analysis", 30, 60)
    assert wait_for(lambda: calls.events == ["stop consuming"], 5)
    thread = watchdog._thread
    assert thread is not None and thread.native_id is not None
    cpu = _thread_cpu_s(thread.native_id)
    time.sleep(1.0)
    assert _thread_cpu_s(thread.native_id) - cpu < 0.1  # waiting, not spinning
    watchdog.ended(other)


def _thread_cpu_s(native_id: int) -> float:
    """CPU seconds (user + system) a thread of this process has used (Linux /proc)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
