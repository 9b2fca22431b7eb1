"""`artreturns worker`: threads that claim due jobs and run them, until told to stop.

Each thread has an engine of its own (its connections, its instance cache) and a name
of its own (`NAME/1`, `NAME/2`, ...), which is what a job's lease records. A stop
request (SIGTERM, SIGINT, `Worker.stop`) lets every thread finish the job in its hands
and take no other; a job never started is never held. A worker killed outright holds
its jobs until their leases run out, then another worker takes them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.errors import ConcurrencyError, EngineError
from engine.jobs import DEFAULT_LEASE

if TYPE_CHECKING:
    from engine.api import Engine


@dataclass
class WorkerReport:
    """What a worker did: jobs run by outcome, and errors that stopped a thread."""

    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

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
        log: Callable[[dict[str, Any]], None] = lambda _: None,
    ) -> None:
        self.engines = list(engines)
        self.actor = actor
        self.name = name
        self.lease = lease
        self.poll = poll
        self.once = once
        self.max_jobs = max_jobs
        self.log = log
        self.report = WorkerReport()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._taken = 0

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
        try:
            while not self._stop.is_set():
                if not self._take():
                    return
                try:
                    job = engine.claim_job(name, self.lease)
                except ConcurrencyError:  # another worker's claim got there first
                    self._untake()
                    continue
                if job is None:
                    self._untake()
                    if self.once:
                        return
                    self._stop.wait(self.poll)
                    continue
                began = time.perf_counter()
                outcome = engine.run_job(job, actor=self.actor, worker=name)
                elapsed = time.perf_counter() - began
                with self._lock:
                    self.report.outcomes[outcome.outcome] += 1
                self.log(
                    {
                        # When the job ended, by the wall clock (the engine's clock may
                        # be set, with --now).
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
        except EngineError as exc:
            with self._lock:
                self.report.errors.append(f"{name}: {exc}")
            self._stop.set()


__all__ = ["Worker", "WorkerReport"]
