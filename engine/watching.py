"""Work in flight, counted for `artreturns watch`: a few grouped reads in plain SQL.

`watch` redraws its view every few seconds, so a frame must cost little: each part is
one query over the task, job and instance tables through their indexes (open tasks by
state, running instances by status), run on a DB-API connection (`engine.reading.Reader`)
that the command line opens with the driver alone. Nothing here imports SQLAlchemy,
SpiffWorkflow or the ORM records, and nothing here knows what the processes are about:
an application adds its own tallies (the returns' ticket statuses) as `tallies`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from engine.reading import Reader

#: How many escalated items and incidents a frame lists (the counts are always whole).
LIST_LIMIT = 20
#: The longest error a frame shows of an incident (`artreturns jobs` shows it whole).
ERROR_LIMIT = 160

#: A tally an application adds: a name and a function of the reader giving counts.
Tally = Callable[[Reader], Mapping[str, int]]


@dataclass(frozen=True)
class StepLoad:
    """Open work at one step of one process for one role, with its oldest item."""

    process_id: str
    bpmn_id: str
    name: str
    role: str | None
    kind: str
    open: int
    overdue: int
    escalated: int
    oldest_key: str  # the business key (or #number) of the item waiting longest
    oldest_since: datetime | None
    oldest_age_seconds: int


@dataclass(frozen=True)
class Item:
    """One escalated task or one failed service task (an incident)."""

    key: str
    process_id: str
    bpmn_id: str
    name: str
    role: str | None
    operator: str | None
    escalated_to: str | None
    due_at: datetime | None
    overdue: bool
    attempts: int
    error: str | None
    since: datetime | None


@dataclass(frozen=True)
class Snapshot:
    """One frame of `watch`: what is open, late, escalated, failed and queued at `at`."""

    at: datetime
    role: str | None
    steps: list[StepLoad]
    escalated: list[Item]
    escalated_total: int
    incidents: list[Item]
    incidents_total: int
    jobs: dict[str, int]
    in_flight: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def roles(self) -> dict[str, dict[str, int]]:
        """Open and overdue items per role ("" for steps drawn in no lane)."""
        found: dict[str, dict[str, int]] = {}
        for step in self.steps:
            counts = found.setdefault(step.role or "", {"open": 0, "overdue": 0})
            counts["open"] += step.open
            counts["overdue"] += step.overdue
        return dict(sorted(found.items()))

    @property
    def totals(self) -> dict[str, int]:
        return {
            "open": sum(s.open for s in self.steps),
            "overdue": sum(s.overdue for s in self.steps),
            "escalated": self.escalated_total,
            "incidents": self.incidents_total,
            "jobs": sum(self.jobs.values()),
        }

    def to_dict(self) -> dict[str, Any]:
        """The frame as JSON-ready data: times in ISO 8601 UTC."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {
            "at": self.at.isoformat(),
            "role": self.role,
            "totals": self.totals,
            "steps": [plain(asdict(s)) for s in self.steps],
            "roles": self.roles,
            "escalated": [plain(asdict(i)) for i in self.escalated],
            "incidents": [plain(asdict(i)) for i in self.incidents],
            "jobs": self.jobs,
            "in_flight": self.in_flight,
        }


def snapshot(
    reader: Reader,
    *,
    now: datetime,
    role: str | None = None,
    tallies: Mapping[str, Tally] | None = None,
) -> Snapshot:
    """A frame at `now`: `role` narrows the steps, escalations and incidents to one
    role's work (its own tasks and those escalated to it). The caller has decided that
    whoever asks may see it."""
    mine, mine_params = "", []
    if role is not None:
        mine, mine_params = " AND (t.role = ? OR t.escalated_to = ?)", [role, role]
    escalated_total, escalated = _items(
        reader, "t.state = 'READY' AND t.escalated_to IS NOT NULL" + mine, mine_params, now
    )
    incidents_total, incidents = _items(
        reader, "t.state = 'FAILED' AND t.kind = 'service'" + mine, mine_params, now
    )
    in_flight = {"process": _running(reader)}
    for name, tally in (tallies or {}).items():
        in_flight[name] = dict(sorted(tally(reader).items()))
    return Snapshot(
        at=now,
        role=role,
        steps=_steps(reader, now, mine, mine_params),
        escalated=escalated,
        escalated_total=escalated_total,
        incidents=incidents,
        incidents_total=incidents_total,
        jobs=_jobs(reader, now),
        in_flight=in_flight,
    )


_PART = "i.process_id, t.bpmn_id, t.role"
_LATE = "CASE WHEN t.due_at IS NOT NULL AND t.due_at <= ? THEN 1 ELSE 0 END"


def _steps(reader: Reader, now: datetime, mine: str, params: list[Any]) -> list[StepLoad]:
    """Per (process, step, role): open items, overdue ones, escalated ones, and the one
    waiting longest; the steps with most overdue first, then the most loaded. The items
    are somebody's work or a wait on the outside world: a person's step (READY), a
    message awaited (WAITING). Service tasks are counted as jobs and incidents; timers
    are deadlines, already shown as due times."""
    sql = (
        "SELECT process_id, bpmn_id, name, role, kind, n, late, raised, key, created_at "  # noqa: S608 - constant names
        "FROM (SELECT i.process_id, t.bpmn_id, t.name, t.role, t.kind, "
        f"COUNT(*) OVER (PARTITION BY {_PART}) AS n, "
        f"SUM({_LATE}) OVER (PARTITION BY {_PART}) AS late, "
        "SUM(CASE WHEN t.escalated_to IS NOT NULL THEN 1 ELSE 0 END) "
        f"OVER (PARTITION BY {_PART}) AS raised, "
        f"ROW_NUMBER() OVER (PARTITION BY {_PART} ORDER BY t.created_at, t.id) AS place, "
        "COALESCE(i.business_key, '#' || CAST(i.id AS VARCHAR(20))) AS key, t.created_at "
        "FROM task t JOIN instance i ON i.id = t.instance_id "
        "WHERE ((t.state = 'READY' AND t.kind IN ('user', 'manual')) "
        f"OR (t.state = 'WAITING' AND t.kind = 'message')){mine}) s "
        "WHERE place = 1 ORDER BY late DESC, n DESC, process_id, bpmn_id, role"
    )
    found = []
    for row in reader.rows(sql, [now, *params]):
        since = reader.time(row[9])
        age = max(0, int((now - since).total_seconds())) if since is not None else 0
        found.append(
            StepLoad(
                process_id=str(row[0]),
                bpmn_id=str(row[1]),
                name=str(row[2]),
                role=row[3],
                kind=str(row[4]),
                open=int(row[5]),
                overdue=int(row[6] or 0),
                escalated=int(row[7] or 0),
                oldest_key=str(row[8]),
                oldest_since=since,
                oldest_age_seconds=age,
            )
        )
    return found


def _items(reader: Reader, where: str, params: list[Any], now: datetime) -> tuple[int, list[Item]]:
    """How many tasks match `where`, and the first `LIST_LIMIT` of them, earliest due
    (then oldest) first."""
    base = f"FROM task t JOIN instance i ON i.id = t.instance_id WHERE {where}"
    total = int(reader.rows(f"SELECT COUNT(*) {base}", params)[0][0])
    rows = reader.rows(
        "SELECT COALESCE(i.business_key, '#' || CAST(i.id AS VARCHAR(20))), "
        "i.process_id, t.bpmn_id, t.name, t.role, t.operator, t.escalated_to, t.due_at, "
        f"t.attempts, t.error, COALESCE(t.ended_at, t.created_at) {base} "
        "ORDER BY CASE WHEN t.due_at IS NULL THEN 1 ELSE 0 END, t.due_at, t.created_at, t.id "
        f"LIMIT {LIST_LIMIT}",
        params,
    )
    items = []
    for row in rows:
        due = reader.time(row[7])
        error = row[9]
        if error is not None and len(error) > ERROR_LIMIT:
            error = error[: ERROR_LIMIT - 1] + "…"
        items.append(
            Item(
                key=str(row[0]),
                process_id=str(row[1]),
                bpmn_id=str(row[2]),
                name=str(row[3]),
                role=row[4],
                operator=row[5],
                escalated_to=row[6],
                due_at=due,
                overdue=due is not None and due <= now,
                attempts=int(row[8] or 0),
                error=error,
                since=reader.time(row[10]),
            )
        )
    return total, items


def _jobs(reader: Reader, now: datetime) -> dict[str, int]:
    """Service tasks waiting for a worker: queued (never tried), retrying (tried, waiting
    for the next attempt), running (a worker holds the lease), as `artreturns jobs`
    names them."""
    row = reader.rows(
        "SELECT "
        "SUM(CASE WHEN locked_until IS NOT NULL AND locked_until >= ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN (locked_until IS NULL OR locked_until < ?) AND attempts > 0 "
        "THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN (locked_until IS NULL OR locked_until < ?) AND attempts = 0 "
        "THEN 1 ELSE 0 END) FROM job",
        [now, now, now],
    )[0]
    running, retrying, queued = (int(v or 0) for v in row)
    return {"queued": queued, "retrying": retrying, "running": running}


def _running(reader: Reader) -> dict[str, int]:
    """Running instances per process."""
    rows = reader.rows(
        "SELECT process_id, COUNT(*) FROM instance WHERE status = 'running' "
        "GROUP BY process_id ORDER BY process_id"
    )
    return {str(process): int(count) for process, count in rows}


__all__ = ["LIST_LIMIT", "Item", "Snapshot", "StepLoad", "Tally", "snapshot"]
