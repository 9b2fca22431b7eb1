"""Jobs: service tasks run by workers, under a lease, on one database shared by many.

With `Settings.inline_handlers` off, a command that reaches a service task does not run
its handler: it saves the task as QUEUED and, in the same transaction, a row in `job`
(see `Work._write_jobs`). A worker claims the earliest due job nobody holds, for a
lease (`locked_by`, `locked_until`), in a short transaction of its own: on PostgreSQL
with `FOR UPDATE SKIP LOCKED`, so that workers on many machines never wait for each
other; on SQLite the database's single writer does the same. Then it runs the job as
one command on its instance: the handler runs, the instance is saved with its revision
check, and the job row disappears in that same transaction (the next service task's
job appears in it). A worker that dies holds nothing once its lease has run out: the
job is claimed again (at least once), and the store's idempotency keys make a repeated
payment or notice return the first one's result (exactly-once effects). A job is not
claimed while another job of its instance is held, and the instance's revision check
refuses a second change made at the same time; a job that lost such a race is
released without counting an attempt.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.errors import ConcurrencyError, InvalidStateError, ProcessError, StoredStateError
from engine.parts import EnginePart
from engine.persistence.writes import Write
from engine.views import _View

if TYPE_CHECKING:
    from engine.runner import Work
    from engine.spiff import OpenTask

#: How long a claimed job stays its worker's unless the worker finishes it first.
DEFAULT_LEASE = timedelta(minutes=5)
#: The most service tasks one job runs on through (a loop of service tasks in a
#: diagram must not keep a worker forever: what is left becomes the next job).
MAX_CHAINED = 50

_CANDIDATE = (
    "SELECT j.id FROM job j WHERE j.due_at <= :b_now "
    "AND (j.locked_until IS NULL OR j.locked_until < :b_now) "
    "AND NOT EXISTS (SELECT 1 FROM job k WHERE k.instance_id = j.instance_id "
    "AND k.id <> j.id AND k.locked_until >= :b_now) "
    "ORDER BY j.due_at, j.id LIMIT 1"
)
_CLAIM_TAIL = (
    "RETURNING id, instance_id, task_id, operator, due_at, attempts, locked_by, locked_until, kind"
)
_CLAIM = {
    "postgresql": Write(
        "UPDATE job SET locked_by = :b_by, locked_until = :b_until "  # noqa: S608 - constants
        f"WHERE id = ({_CANDIDATE} FOR UPDATE SKIP LOCKED) {_CLAIM_TAIL}",
        ("b_now", "b_until"),
    ),
    "sqlite": Write(
        "UPDATE job SET locked_by = :b_by, locked_until = :b_until "  # noqa: S608 - constants
        f"WHERE id = ({_CANDIDATE}) {_CLAIM_TAIL}",
        ("b_now", "b_until"),
    ),
}
_RELEASE = Write(
    "UPDATE job SET locked_by = NULL, locked_until = NULL WHERE id = :b_id AND locked_by = :b_by"
)
_DELETE = Write("DELETE FROM job WHERE id = :b_id")
_POSTPONE = Write(
    "UPDATE job SET attempts = :b_attempts, due_at = :b_due, last_error = :b_error, "
    "locked_by = NULL, locked_until = NULL WHERE id = :b_id AND locked_by = :b_by",
    ("b_due",),
)
_COUNT = Write("SELECT count(*) FROM job WHERE kind = :b_kind")
_LIST = (
    "SELECT j.id, j.instance_id, i.business_key, j.task_id, t.bpmn_id, j.operator, j.due_at, "
    "j.attempts, j.locked_by, j.locked_until, j.last_error, j.kind FROM job j "
    "JOIN instance i ON i.id = j.instance_id LEFT JOIN task t ON t.id = j.task_id "
    "ORDER BY j.due_at, j.id"
)


@dataclass(frozen=True)
class JobView(_View):
    """A queued service task as workers see it."""

    #: None for a failed one: its job is gone, the task is an incident.
    id: int | None
    instance_id: int
    business_key: str | None
    task_id: str
    bpmn_id: str | None
    operator: str | None
    #: None for a failed one.
    due_at: datetime | None
    attempts: int
    locked_by: str | None
    locked_until: datetime | None
    last_error: str | None
    #: "running" while a worker's lease holds; "retrying" when an attempt failed and
    #: the next waits for its time; "queued"; "failed" when the last attempt failed
    #: (an incident, until `retry`).
    status: str = "queued"
    #: "service" (a service task's handler) or "timer" (the instance's next timer).
    kind: str = "service"


@dataclass(frozen=True)
class JobOutcome(_View):
    """What running one job did: "done" (the handler ran, the instance moved on),
    "failed" (the handler failed: the task is an incident), "gone" (the task was no
    longer waiting), "released" (another command changed the instance first; the job
    waits again, no attempt counted)."""

    job: int
    instance_id: int
    task_id: str
    operator: str | None
    outcome: str
    error: str | None = None
    #: Service tasks run: the job's own and those it reached, run on in the same command.
    steps: int = 0


class Jobs(EnginePart):
    """The engine's job commands (a part of `Engine`)."""

    def jobs(self) -> list[JobView]:
        """Every job, earliest due first, then the failed ones (the incidents)."""
        from engine.reading import Reader

        now = self.clock.now()
        with self.db.read() as session:
            conn = session.connection()
            reader = Reader.on(conn)
            found = []
            for row in reader.rows(_LIST):
                locked_until = reader.time(row[9])
                due_at = reader.time(row[6])
                assert due_at is not None
                running = locked_until is not None and locked_until >= now
                status = "running" if running else "retrying" if row[7] else "queued"
                found.append(
                    JobView(
                        id=row[0],
                        instance_id=row[1],
                        business_key=row[2],
                        task_id=row[3],
                        bpmn_id=row[4],
                        operator=row[5],
                        due_at=due_at,
                        attempts=row[7],
                        locked_by=row[8] if running else None,
                        locked_until=locked_until if running else None,
                        last_error=row[10],
                        status=status,
                        kind=row[11],
                    )
                )
        for task in self.incidents():
            found.append(
                JobView(
                    id=None,
                    instance_id=task.instance_id,
                    business_key=task.business_key,
                    task_id=task.id,
                    bpmn_id=task.bpmn_id,
                    operator=task.operator,
                    due_at=None,
                    attempts=task.attempts,
                    locked_by=None,
                    locked_until=None,
                    last_error=task.error,
                    status="failed",
                )
            )
        return found

    def job_count(self, kind: str = "service") -> int:
        """How many jobs of `kind` are queued or running."""
        with self.db.connect() as conn:
            return int(_COUNT.run(conn, {"b_kind": kind}).scalar_one())

    def claim_job(self, worker: str, lease: timedelta = DEFAULT_LEASE) -> JobView | None:
        """The earliest due job nobody holds, now held by `worker` until the lease runs
        out; None when no job is due. Its own short transaction."""
        now = self.clock.now()
        until = now + lease
        with self.db.connect() as conn:
            claim = _CLAIM[conn.dialect.name]
            row = claim.run(conn, {"b_by": worker, "b_until": until, "b_now": now}).first()
        if row is None:
            return None
        from engine.reading import read_time

        due_at = read_time(row[4])
        assert due_at is not None
        return JobView(
            id=row[0],
            instance_id=row[1],
            business_key=None,
            task_id=row[2],
            bpmn_id=None,
            operator=row[3],
            due_at=due_at,
            attempts=row[5],
            locked_by=row[6],
            locked_until=read_time(row[7]),
            last_error=None,
            status="running",
            kind=row[8],
        )

    def release_job(self, job: JobView, worker: str) -> None:
        """Let go of a job without running it (a lost race, a worker shutting down)."""
        with self.db.connect() as conn:
            _RELEASE.run(conn, {"b_id": job.id, "b_by": worker})

    def run_job(self, job: JobView, *, actor: str, worker: str) -> JobOutcome:
        """Run a claimed job as one command on its instance, as `actor` (the worker's
        user). The job row goes with the save that records what the handler did; a
        failed attempt with attempts left moves the job to its next try (the wait
        doubling each time), the last one makes the task an incident."""
        seen: dict[str, Any] = {"outcome": "gone"}
        attempt = job.attempts + 1

        def attempt_at(work: Work, task: OpenTask, number: int) -> str:
            """Run one handler; a failure with attempts left waits for its next try."""
            work.attempt_of[task.id] = number
            work.run_service_task(task)
            return _settle(work, task, number)

        def apply(work: Work, _task: str | None) -> None:
            if job.kind == "timer":  # the command fires what is due before it applies
                seen["outcome"] = "done"
                return
            task = work.open_task(job.task_id)
            if task is None or task.kind != "service":
                return
            seen["outcome"] = attempt_at(work, task, attempt)
            seen["error"] = work.failures.get(task.id) or (
                work.retry_later[task.id][2] if task.id in work.retry_later else None
            )
            # Run on, in this same command, through the service tasks this step reached
            # (as handlers inline do): one save instead of one job each. A task that
            # was waiting before keeps its own job.
            ran = {task.id}
            for _ in range(MAX_CHAINED):
                reached = [
                    t
                    for t in work.run.open_tasks()
                    if t.kind == "service"
                    and t.id not in ran
                    and t.id not in work.before
                    and t.id not in work.failures
                    and t.id not in work.retry_later
                ]
                if not reached:
                    break
                ran.add(reached[0].id)
                attempt_at(work, reached[0], 1)
            seen["steps"] = len(ran)

        assert job.id is not None, "a claimed job has its number"
        job_number = job.id

        def outcome(name: str, error: str | None = None) -> JobOutcome:
            steps = int(seen.get("steps", 0))
            return JobOutcome(
                job_number, job.instance_id, job.task_id, job.operator, name, error, steps
            )

        try:
            self._change(
                str(job.instance_id),
                actor,
                apply,
                by_id=True,
                operation="job",
                gate=_worker_gate,
                immediate=True,  # on SQLite, workers queue for the one writer
            )
        except ConcurrencyError:
            self.release_job(job, worker)
            return outcome("released")
        except InvalidStateError:  # the instance ended meanwhile: nothing left to run
            with self.db.connect() as conn:
                _DELETE.run(conn, {"b_id": job.id})
            return outcome("gone")
        except (ProcessError, StoredStateError) as exc:
            # The diagram failed around the handler (a condition or a script after it,
            # a timer's path), or the instance's state cannot be read: nothing of the
            # command was saved. The attempt fails as a handler's would, so that one
            # instance cannot stop every worker in turn.
            return outcome(*self._attempt_failed(job, actor, worker, attempt, str(exc)))
        return outcome(seen["outcome"], seen.get("error"))

    def _attempt_failed(
        self, job: JobView, actor: str, worker: str, attempt: int, error: str
    ) -> tuple[str, str]:
        """Record a job's attempt that failed with nothing saved: a service task's as a
        handler failure (its next try, or an incident after the last), in a command of
        its own that runs nothing; a timer's, or one that cannot be recorded so, by
        moving the job to its next try (the wait doubling each time, never an
        incident: the timer fires when the instance is put right). The outcome and
        the error."""
        seen: dict[str, str] = {}

        def record(work: Work, _task: str | None) -> None:
            task = work.open_task(job.task_id)
            if task is None or task.kind != "service":
                return
            work.attempt_of[task.id] = attempt
            work.record_failure(task, error, attempt)
            seen["outcome"] = _settle(work, task, attempt)

        if job.kind == "service":
            # Not recorded so (the record itself refused, raced, the instance ended):
            # postponed below, and the next attempt sees what became of it.
            with contextlib.suppress(
                ProcessError, StoredStateError, ConcurrencyError, InvalidStateError
            ):
                self._change(
                    str(job.instance_id),
                    actor,
                    record,
                    by_id=True,
                    fire=False,  # what is due may be what failed
                    operation="job",
                    gate=_worker_gate,
                    immediate=True,
                )
                if "outcome" in seen:  # saved
                    return seen["outcome"], error
        # At least a second: with no backoff set, a worker would take it again at once.
        due = self.clock.now() + max(self.settings.backoff(attempt), timedelta(seconds=1))
        with self.db.connect() as conn:
            _POSTPONE.run(
                conn,
                {
                    "b_id": job.id,
                    "b_by": worker,
                    "b_attempts": attempt,
                    "b_due": due,
                    "b_error": error,
                },
            )
        return "retry", error


def _settle(work: Work, task: OpenTask, number: int) -> str:
    """How attempt `number` at a service task ended: "done"; "retry" (it failed with
    attempts left: its job waits for its next try, the wait doubling each time); or
    "failed" (the last attempt failed: the task is an incident)."""
    settings = work.settings
    error = work.failures.get(task.id)
    limit = task.attempts or settings.attempts_for(task.operator)
    if error is not None and number < limit:
        del work.failures[task.id]
        when = work.now + settings.backoff(number)
        work.retry_later[task.id] = (number, when, error)
        return "retry"
    return "failed" if error is not None else "done"


def _worker_gate(work: Work, principal: Any) -> Any:
    """Who may run jobs: as `run-due`, any active user but an auditor."""
    from engine.permissions import may_housekeep

    return may_housekeep(principal, "run jobs")


__all__ = ["DEFAULT_LEASE", "JobOutcome", "JobView", "Jobs"]
