"""Job time limits where Celery enforces none: the ``threads`` and ``solo`` pools.

Celery enforces ``task_soft_time_limit`` and ``task_time_limit`` only in prefork pool
children (a signal raises ``SoftTimeLimitExceeded`` in the child; the child is killed at
the hard limit). The imaging worker runs ``--pool threads`` (its 16 job threads share one
model and batch their images) and the embedded worker ``--pool solo``: there a job that
overruns would run, and hold its pool slot, for ever. A Python thread cannot be killed,
and an asynchronous exception (``PyThreadState_SetAsyncExc``) is no substitute: it waits
until the thread runs Python bytecode again (never, inside a blocking call or a C
extension) and can land after the job, in the pool's own loop. So the limits are
enforced around the job instead, by one watchdog thread per process:

* **Soft limit** (90% of the hard one): the job is over. The watchdog fails its Task
  with the timeout reason (``statusReason`` and an OperationOutcome, issue ``timeout``,
  through the job's ``on_expired``), and whatever the job does afterwards is discarded:
  at its next stage boundary (before it writes its results, :meth:`WorkerRuntime.write`,
  and before its Task is completed, :func:`checkpoint`) its thread finds the job expired
  and writes nothing. A job reaching a boundary past its soft limit before the watchdog
  has looked expires itself the same way. Whoever expires a job fails its Task, once. A
  job already writing its results when the limit passes is let finish: the write is one
  transaction, and the Task is then completed.
* **Hard limit**: a job thread still not back is stuck, in a blocking call or C code.
  It cannot be stopped, and it holds a pool slot (and perhaps locks), so the worker
  retires: it stops taking jobs (Celery's warm shutdown, asked for with SIGTERM), lets
  its other running jobs end (each bounded by its own limits), and exits with status 75
  (``EX_TEMPFAIL``; the interpreter cannot exit normally while a pool thread runs) for
  its supervisor (Compose's restart policy, systemd, Kubernetes) to start it again. The
  stuck job's message, never acknowledged (late acks), is delivered again after the
  broker's visibility timeout and finds its Task failed: it does not run again. Jobs
  the worker had reserved but not started come back after the visibility timeout too.

In a prefork pool child none of this runs: Celery enforces the limits there.

The job a thread runs is found through a :class:`~contextvars.ContextVar`, the per-thread
equivalent of an argument: the stage boundary (the results write) is deep in each job's
code, which should not have to pass its clock along.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from billiard.process import current_process  # type: ignore[import-untyped]

logger = logging.getLogger("workers.time_limits")

#: Exit status of a worker that retires because a job thread is stuck (EX_TEMPFAIL).
STUCK_EXIT_STATUS: Final = 75
#: How long the watchdog waits at most between looks (it is woken on each change anyway).
_TICK_S: Final = 5.0


class JobState(enum.Enum):
    RUNNING = "running"
    COMMITTING = "committing"  # writing its results: no longer expires
    EXPIRED = "expired"  # past its soft limit: its Task is (being) failed
    ENDED = "ended"  # its thread came back


class JobExpired(Exception):
    """Raised at a stage boundary of a job past its soft limit: nothing more is written."""


@dataclass(eq=False)
class JobClock:
    """The limits of one running job and where it stands (guarded by its watchdog's lock)."""

    task_id: str
    task_name: str
    what: str  # names the work in the failure reason: "The analysis exceeded its time limit"
    soft_at: float  # time.monotonic() deadlines
    hard_at: float
    watchdog: Watchdog
    state: JobState = JobState.RUNNING
    failure_claimed: bool = False
    failure_recorded: bool = False
    retry_fail_at: float = 0.0

    @property
    def reason(self) -> str:
        return f"The {self.what} exceeded its time limit"

    def claim_failure(self) -> bool:
        """True for the one caller that is to fail this expired job's Task."""
        with self.watchdog.condition:
            if self.state is not JobState.EXPIRED or self.failure_claimed:
                return False
            self.failure_claimed = True
            return True


#: Fails the Task of an expired job (its reason, issue code ``timeout``); may raise.
ExpiredHandler = Callable[[JobClock], None]


@dataclass(eq=False)
class Watchdog:
    """Watches the jobs of this process's threads; see the module docs.

    ``on_expired`` fails an expired job's Task (tried again after ``retry_s`` when it
    raises: the database may be away); ``stop_consuming`` asks the worker for a warm
    shutdown; ``exit_process`` ends the process.
    """

    on_expired: ExpiredHandler
    stop_consuming: Callable[[], None]
    exit_process: Callable[[int], None]
    retry_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    condition: threading.Condition = field(default_factory=threading.Condition)
    jobs: set[JobClock] = field(default_factory=set)
    retiring: bool = False
    _thread: threading.Thread | None = None

    def watch(
        self, task_id: str, task_name: str, what: str, soft_s: float, hard_s: float
    ) -> JobClock:
        """Start the clock of a job the calling thread runs."""
        now = self.clock()
        clock = JobClock(task_id, task_name, what, now + soft_s, now + hard_s, self)
        with self.condition:
            self.jobs.add(clock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            self.condition.notify()
        return clock

    def ended(self, clock: JobClock) -> None:
        """The job's thread came back."""
        with self.condition:
            clock.state = JobState.ENDED
            self.jobs.discard(clock)
            self.condition.notify()

    def commit(self, clock: JobClock) -> bool:
        """A stage boundary: True if the job may write its results (and then it no longer
        expires); False if it has expired (now, if its soft limit has passed)."""
        with self.condition:
            if clock.state is JobState.RUNNING and self.clock() >= clock.soft_at:
                clock.state = JobState.EXPIRED
                self.condition.notify()
            if clock.state is JobState.EXPIRED:
                return False
            clock.state = JobState.COMMITTING
            return True

    def _run(self) -> None:
        while True:
            expired, stuck, live = self._look()
            for clock in expired:
                self._fail(clock)
            if stuck and not self.retiring:
                self._retire(stuck, live)
            if self.retiring and not live:
                logger.critical("worker exits: a job thread is stuck past its hard time limit")
                _flush_logs()
                self.exit_process(STUCK_EXIT_STATUS)
                return

    def _look(self) -> tuple[list[JobClock], list[JobClock], int]:
        """Wait for the next deadline; (jobs to fail, stuck jobs, live jobs)."""
        with self.condition:
            self.condition.wait(timeout=self._wait_s())
            now = self.clock()
            for clock in self.jobs:
                if clock.state is JobState.RUNNING and now >= clock.soft_at:
                    clock.state = JobState.EXPIRED
            expired = [
                c
                for c in self.jobs
                if c.state is JobState.EXPIRED
                and not c.failure_recorded
                and (not c.failure_claimed or (c.retry_fail_at and now >= c.retry_fail_at))
            ]
            for clock in expired:
                clock.failure_claimed = True
            stuck = [c for c in self.jobs if now >= c.hard_at]
            live = sum(
                1
                for c in self.jobs
                if c.state in (JobState.RUNNING, JobState.COMMITTING) and now < c.hard_at
            )
            return expired, stuck, live

    def _wait_s(self) -> float:
        """Until the next deadline still ahead (a stuck job's hard limit is behind it)."""
        now = self.clock()
        deadlines = [_TICK_S]
        for clock in self.jobs:
            if clock.state is JobState.RUNNING:
                deadlines.append(clock.soft_at - now)
            if clock.retry_fail_at:
                deadlines.append(clock.retry_fail_at - now)
            if clock.hard_at > now:
                deadlines.append(clock.hard_at - now)
        return max(0.0, min(deadlines))

    def _fail(self, clock: JobClock) -> None:
        try:
            self.on_expired(clock)
        except Exception:  # the database is away: try again shortly
            logger.exception("expired job's Task not failed", extra={"task_id": clock.task_id})
            with self.condition:
                clock.retry_fail_at = self.clock() + self.retry_s
            return
        with self.condition:
            clock.failure_recorded = True
            clock.retry_fail_at = 0.0

    def _retire(self, stuck: list[JobClock], live: int) -> None:
        self.retiring = True
        logger.critical(
            "job thread stuck past its hard time limit: the worker retires",
            extra={"task_ids": [c.task_id for c in stuck], "live_jobs": live},
        )
        if live:  # stop taking jobs; exit once those running have ended
            self.stop_consuming()


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


_CURRENT: ContextVar[JobClock | None] = ContextVar("fhir_ai_job_clock", default=None)


def pool_enforces_limits() -> bool:
    """True in a prefork pool child, where Celery enforces the time limits itself."""
    return bool(current_process().name != "MainProcess")


def limits_of(task: Any) -> tuple[float | None, float | None]:
    """(soft, hard) seconds of the Celery ``task`` being run: its message's, else its own,
    else the app's configuration."""
    hard, soft = task.request.timelimit or (None, None)
    conf = task.app.conf
    hard = hard or task.time_limit or conf.task_time_limit
    soft = soft or task.soft_time_limit or conf.task_soft_time_limit
    return (float(soft) if soft else None, float(hard) if hard else None)


@contextmanager
def job_clock(
    watchdog: Callable[[], Watchdog], task: Any, task_id: str, what: str
) -> Iterator[JobClock | None]:
    """The clock of the job run in this block by the calling thread; None where Celery
    enforces the limits itself or none are set."""
    soft, hard = limits_of(task)
    if pool_enforces_limits() or hard is None:
        yield None
        return
    clock = watchdog().watch(task_id, task.name, what, soft or hard, hard)
    token = _CURRENT.set(clock)
    try:
        yield clock
    finally:
        _CURRENT.reset(token)
        clock.watchdog.ended(clock)


def checkpoint() -> None:
    """A stage boundary of the job this thread runs: raise :class:`JobExpired` if it is past
    its soft limit; else it may write its results (and no longer expires)."""
    clock = _CURRENT.get()
    if clock is not None and not clock.watchdog.commit(clock):
        raise JobExpired(clock.reason)


def warm_shutdown() -> None:
    """Ask this worker for Celery's warm shutdown (what SIGTERM does)."""
    os.kill(os.getpid(), signal.SIGTERM)
