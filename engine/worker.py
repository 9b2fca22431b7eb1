"""`artreturns worker`: threads that claim due jobs and run them, until told to stop.

Each thread has an engine of its own (its connections, its instance cache) and a name
of its own (`NAME/1`, `NAME/2`, ...), which is what a job's lease records. A stop
request (SIGTERM, SIGINT, `Worker.stop`) lets every thread finish the job in its hands
and take no other; a job never started is never held. A worker killed outright holds
its jobs until their leases run out, then another worker takes them.

A database that cannot be reached (a server restarting, a network cut) does not stop
a worker: each thread logs it, waits (longer each time, up to `MAX_PAUSE`) and tries
again; a job in hand when the connection was lost is released once the database
answers again (if its command was committed after all, there is nothing to release).
Handler calls cut off by their time limit leave threads behind that cannot be
killed: past `max_abandoned` of them, the worker stops taking jobs and exits with an
error, so that whoever supervises it starts a fresh process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from engine.errors import ConcurrencyError, EngineError
from engine.jobs import DEFAULT_LEASE
from engine.registry import abandoned_calls

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.jobs import JobView

log = logging.getLogger("artreturns.worker")

#: The longest a thread waits between two tries at a database it cannot reach.
MAX_PAUSE = 5.0
#: Handler calls cut off and still running after which a worker stops.
MAX_ABANDONED = 16
_LOST = re.compile(
    r"connect|server closed|terminating|shutting down|starting up|could not receive|"
    r"could not send|broken pipe|reset by peer|network|timeout expired",
    re.IGNORECASE,
)


def unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached or the connection was
    lost: worth trying again, unlike a refusal (read-only, disk full, no schema)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, DBAPIError):
            if cause.connection_invalidated:
                return True
            return isinstance(cause, OperationalError | InterfaceError) and bool(
                _LOST.search(str(cause.orig))
            )
        # The driver's own error, met where the engine reads through the driver alone
        # (DB-API drivers name their classes alike).
        if type(cause).__name__ in ("OperationalError", "InterfaceError"):
            return bool(_LOST.search(str(cause)))
        cause = cause.__cause__ or cause.__context__
    return False


def patiently(
    call: Callable[[], Any],
    *,
    log: Callable[[dict[str, Any]], None],
    name: str,
    pause: float = 1.0,
) -> Any:
    """`call()`, tried again (with a log line each time) while the database cannot be
    reached: a worker started before its database waits for it."""
    while True:
        try:
            return call()
        except EngineError as exc:
            if not unreachable(exc):
                raise
            log(
                {
                    "at": datetime.now(UTC).isoformat(),
                    "worker": name,
                    "event": "database unreachable",
                    "error": exc.message,
                }
            )
            time.sleep(pause)
            pause = min(MAX_PAUSE, pause * 2)


@dataclass
class WorkerReport:
    """What a worker did: jobs run by outcome, and errors that stopped a thread."""

    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    #: Times a thread found the database unreachable, and the longest it went on so.
    outages: int = 0
    longest_outage: float = 0.0

    @property
    def jobs(self) -> int:
        return sum(self.outcomes.values())


class Worker:
    """Run jobs on `engines` (one thread each) as `actor`, until stopped; with `once`,
    each thread stops when no job is due; with `max_jobs`, after that many in all."""

    def __init__(
        self,
        engines: Sequence[Engine],
        *,
        actor: str,
        name: str,
        lease: timedelta = DEFAULT_LEASE,
        poll: float = 1.0,
        once: bool = False,
        max_jobs: int | None = None,
        max_abandoned: int = MAX_ABANDONED,
        log: Callable[[dict[str, Any]], None] = lambda _: None,
    ) -> None:
        self.engines = list(engines)
        self.actor = actor
        self.name = name
        self.lease = lease
        self.poll = poll
        self.once = once
        self.max_jobs = max_jobs
        self.max_abandoned = max_abandoned
        self.log = log
        self.report = WorkerReport()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._taken = 0
        #: The job each thread runs, by thread name, while it runs it.
        self._held: dict[str, JobView] = {}

    def stop(self) -> None:
        """Finish the jobs in hand, take no other."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> WorkerReport:
        """Run the threads until they are done; the caller's thread waits (and can be
        interrupted to call `stop`)."""
        threads = [
            threading.Thread(
                target=self._loop, args=(engine, f"{self.name}/{n}"), name=f"{self.name}/{n}"
            )
            for n, engine in enumerate(self.engines, start=1)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
        return self.report

    def _take(self) -> bool:
        """Count one job against `max_jobs`; False when the limit is reached."""
        with self._lock:
            if self.max_jobs is not None and self._taken >= self.max_jobs:
                return False
            self._taken += 1
            return True

    def _untake(self) -> None:
        with self._lock:
            self._taken -= 1

    def _loop(self, engine: Engine, name: str) -> None:
        in_hand: JobView | None = None  # claimed, its command's fate unknown
        lost_since: float | None = None
        pause = self.poll
        try:
            while not self._stop.is_set():
                try:
                    if lost_since is not None:
                        with engine.db.connect() as conn:  # raises while unreachable
                            conn.exec_driver_sql("SELECT 1")
                        self._reached(name, lost_since)
                        lost_since, pause = None, self.poll
                    if in_hand is not None:
                        engine.release_job(in_hand, name)
                        in_hand = None
                    if not self._step(engine, name):
                        return
                except Exception as exc:
                    if not unreachable(exc):
                        raise
                    with self._lock:
                        in_hand = self._held.pop(name, in_hand)
                    if lost_since is None:
                        lost_since = time.monotonic()
                        with self._lock:
                            self.report.outages += 1
                    self._lost(name, exc, in_hand)
                    self._stop.wait(pause)
                    pause = min(MAX_PAUSE, max(pause, 0.1) * 2)
        except EngineError as exc:
            with self._lock:
                self.report.errors.append(f"{name}: {exc}")
            self._stop.set()
        except Exception as exc:  # a thread must not vanish: the worker stops with it
            log.exception("worker thread %s stopped", name)
            with self._lock:
                self.report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            self._stop.set()

    def _step(self, engine: Engine, name: str) -> bool:
        """Claim a job and run it; False when this thread is done."""
        if not self._take():
            return False
        try:
            job = engine.claim_job(name, self.lease)
        except ConcurrencyError:  # another worker's claim got there first
            self._untake()
            return True
        except Exception:
            self._untake()
            raise
        if job is None:
            self._untake()
            if self.once:
                return False
            self._stop.wait(self.poll)
            return True
        began = time.perf_counter()
        with self._lock:
            self._held[name] = job
        try:
            outcome = engine.run_job(job, actor=self.actor, worker=name)
        except Exception:
            self._untake()  # not run: it counts when it runs
            raise
        elapsed = time.perf_counter() - began
        with self._lock:
            del self._held[name]
            self.report.outcomes[outcome.outcome] += 1
        self.log(
            {
                # When the job ended, by the wall clock (the engine's clock may be set,
                # with --now).
                "at": datetime.now(UTC).isoformat(),
                "worker": name,
                "job": job.id,
                "kind": job.kind,
                "instance": job.instance_id,
                "task": job.task_id,
                "operator": job.operator,
                "attempt": job.attempts + 1,
                "outcome": outcome.outcome,
                "steps": outcome.steps,
                "ms": round(elapsed * 1000, 1),
                "error": outcome.error,
            }
        )
        left = abandoned_calls()
        if left > self.max_abandoned:
            raise EngineError(
                f"{left} handler calls cut off by their time limit still run in this "
                "process; it stops taking jobs",
                "Start the worker again (a supervisor such as systemd does it), and look "
                "at the handlers that time out (`artreturns incidents`).",
            )
        return True

    def _lost(self, name: str, exc: Exception, in_hand: JobView | None) -> None:
        self.log(
            {
                "at": datetime.now(UTC).isoformat(),
                "worker": name,
                "event": "database unreachable",
                "job": in_hand.id if in_hand is not None else None,
                "error": exc.message if isinstance(exc, EngineError) else str(exc),
            }
        )

    def _reached(self, name: str, since: float) -> None:
        down = time.monotonic() - since
        with self._lock:
            self.report.longest_outage = max(self.report.longest_outage, down)
        self.log(
            {
                "at": datetime.now(UTC).isoformat(),
                "worker": name,
                "event": "database reachable again",
                "after_s": round(down, 2),
            }
        )


__all__ = ["Worker", "WorkerReport", "patiently"]
