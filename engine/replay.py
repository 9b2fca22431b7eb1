"""Replay: rebuild an instance from its recorded events alone, and check every step.

The engine starts the instance again from nothing, under the process version its events
were recorded with (the spec stored when that version was deployed, never the files on
disk), and applies the events in order: the start data, each completed task's data,
each handler's recorded result (no handler is called), each BPMN error, each message,
each round of timers, a cancellation, with the clock at each event's time (or, for what
a fired timer started, at the time it fell due). After every event it compares the
digest of the rebuilt state with the digest recorded then, and stops at the first one
that differs, saying what differs: which step, which data keys (recorded against
rebuilt), which task the history goes on with that the rebuilt instance does not have
open.

The same walk, stopped at an event or a time, gives the instance as it stood then
(`point_in_time`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.canonical import canonical_json, load_data
from engine.errors import EngineError
from engine.history import EventKind

if TYPE_CHECKING:
    from engine.evaluator import Evaluator
    from engine.history import ChainedEvent
    from engine.spiff import OpenTask, Run
    from engine.spiff.serialization import SpecBundle

#: The events that change the workflow's state; the others (comments, claims, refusals,
#: escalations, the end) leave its digest as it was.
CHANGING = frozenset(
    {
        EventKind.STARTED,
        EventKind.TASK_COMPLETED,
        EventKind.HANDLER_RESULT,
        EventKind.ERROR_THROWN,
        EventKind.TIMER_FIRED,
        EventKind.MESSAGE,
        EventKind.CANCELLED,
        EventKind.MIGRATED,
    }
)

#: The longest value an explanation quotes.
VALUE_LIMIT = 100


@dataclass(frozen=True)
class Divergence:
    """The first event whose recorded state the replay did not reach, and why."""

    seq: int
    kind: str
    at: datetime
    step: str | None
    reason: str
    details: tuple[str, ...] = ()

    def headline(self) -> str:
        step = f" at '{self.step}'" if self.step else ""
        return f"event {self.seq} ({self.kind}{step}, {self.at.isoformat()}): {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "step": self.step,
            "reason": self.reason,
            "details": list(self.details),
        }


@dataclass
class Replayed:
    """What a replay rebuilt: the run after the last event applied, and what the
    history says beside the workflow (claims, failed attempts, status)."""

    run: Run | None = None
    #: The events applied, in order.
    applied: list[ChainedEvent] = field(default_factory=list)
    divergence: Divergence | None = None
    status: str = "running"
    ended_at: datetime | None = None
    #: Claims on open tasks: task ref -> (holder, since).
    claims: dict[tuple[str, int], tuple[str, datetime]] = field(default_factory=dict)
    #: Service tasks whose last attempt failed: ref -> (attempts, error).
    failed: dict[tuple[str, int], tuple[int, str]] = field(default_factory=dict)
    #: The task ids the history records for task refs (the replay's own ids are new).
    task_ids: dict[tuple[str, int], str] = field(default_factory=dict)

    #: The time of the first event after those applied (None: none is left).
    next_at: datetime | None = None

    @property
    def last(self) -> ChainedEvent | None:
        return self.applied[-1] if self.applied else None


def replay(
    events: Sequence[ChainedEvent],
    bundles: Callable[[int], SpecBundle],
    evaluator: Evaluator,
    *,
    stop: Callable[[ChainedEvent], bool] | None = None,
) -> Replayed:
    """Apply `events` (an instance's history from its first event) to a new run of the
    version it started under (`bundles` gives each version's specs); stop before the
    first event for which `stop` is true, or at the first divergence."""
    result = Replayed()
    for event in events:  # a ref names one task for the whole history
        ref = load_data(event.data).get("ref") if event.task_id else None
        if isinstance(ref, dict):
            result.task_ids[(str(ref["path"]), int(ref["ordinal"]))] = event.task_id or ""
    for index, event in enumerate(events):
        if stop is not None and stop(event):
            result.next_at = event.at
            break
        data = load_data(event.data)
        waiting = _open_lines(result.run)  # before the event (a failed one leaves a muddle)
        try:
            rebuilt = _apply(result, event, data, bundles, evaluator)
        except EngineError as exc:
            result.divergence = Divergence(
                event.seq,
                event.kind,
                event.at,
                event.task_name or event.bpmn_id,
                f"the replay cannot apply it: {exc.message}",
                tuple(
                    line.replace("the rebuilt instance", "before it, the rebuilt instance")
                    for line in waiting
                ),
            )
            return result
        result.applied.append(event)
        _note(result, event, data)
        if result.run is None:
            continue
        found = result.run.digest()
        if found != event.state_digest:
            result.divergence = Divergence(
                event.seq,
                event.kind,
                event.at,
                event.task_name or event.bpmn_id,
                "the rebuilt state differs from the state recorded after it "
                f"(digest recorded {event.state_digest[:12]}, rebuilt {found[:12]})",
                tuple(_explain(result.run, data, rebuilt, events[index + 1 :])),
            )
            return result
    return result


def _apply(
    result: Replayed,
    event: ChainedEvent,
    data: Mapping[str, Any],
    bundles: Callable[[int], SpecBundle],
    evaluator: Evaluator,
) -> dict[str, list[Any]] | None:
    """Apply one event; return the data changes it made, where the event records them."""
    from engine.runner import changes, top_level
    from engine.spiff import Run, TaskRef

    kind = event.kind
    at = event.at
    if kind == EventKind.STARTED:
        if result.run is not None:
            raise EngineError("the history starts the instance twice")
        given = data.get("data") or {}
        result.run = Run.start(bundles(event.process_version), given, evaluator, lambda: at)
        return changes(top_level(given), top_level(result.run.data))
    run = result.run
    if run is None:
        raise EngineError("the history does not begin with the instance's start")
    if kind not in CHANGING:
        return None
    clock = _time(data.get("clock")) or at
    run.use_clock(lambda: clock)
    before = top_level(run.data)
    ref = data.get("ref")
    task_ref = TaskRef(str(ref["path"]), int(ref["ordinal"])) if isinstance(ref, dict) else None
    if kind == EventKind.TASK_COMPLETED:
        task = _find(run, task_ref, ("user", "manual"))
        run.complete_user_task(task.id, data.get("data") or {})
    elif kind == EventKind.HANDLER_RESULT:
        task = _find(run, task_ref, ("service",))
        run.complete_service_task(task.id, data.get("result") or {})
    elif kind == EventKind.ERROR_THROWN:
        task = _find(run, task_ref, ("service",))
        if not run.throw_error(task.id, str(data.get("code")), data.get("payload") or {}):
            raise EngineError(f"no boundary event catches error '{data.get('code')}' now")
    elif kind == EventKind.TIMER_FIRED:
        fired = run.fire_earliest_due()
        recorded = sorted(
            (str(t["ref"]["path"]), int(t["ref"]["ordinal"])) for t in data.get("timers", [])
        )
        rebuilt = sorted((t.ref.path, t.ref.ordinal) for t in fired)
        if recorded and rebuilt != recorded:
            names = ", ".join(t.name for t in fired) or "none"
            raise EngineError(
                "the timers that fire are not the ones recorded "
                f"({_names(data.get('timers', []))} recorded; {names} rebuilt)"
            )
    elif kind == EventKind.MESSAGE:
        run.deliver_message(str(data.get("name")), data.get("payload") or {})
    elif kind == EventKind.CANCELLED:
        run.cancel()
    elif kind == EventKind.MIGRATED:
        version = int(data["to_version"])
        target = bundles(version)
        found = run.migration(target, version)
        if not found.safe:
            raise EngineError(f"the move to version {version} is not safe: {found.reasons[0]}")
        run.migrate(target, found)
    return changes(before, top_level(run.data))


def _find(run: Run, ref: Any, kinds: tuple[str, ...]) -> OpenTask:
    if ref is None:
        raise EngineError("the event names no task")
    return run.find(ref, kinds)


def _note(result: Replayed, event: ChainedEvent, data: Mapping[str, Any]) -> None:
    """Keep what the history says beside the workflow: ids, claims, failures, status."""
    ref = data.get("ref")
    key = (str(ref["path"]), int(ref["ordinal"])) if isinstance(ref, dict) else None
    kind = event.kind
    if key is not None and kind in (EventKind.CLAIMED, EventKind.DELEGATED):
        holder = data.get("to") if kind == EventKind.DELEGATED else data.get("by")
        result.claims[key] = (str(holder or event.actor), event.at)
    elif key is not None and kind == EventKind.UNCLAIMED:
        result.claims.pop(key, None)
    elif key is not None and kind == EventKind.HANDLER_FAILED:
        result.failed[key] = (int(data.get("attempt") or 1), str(data.get("error") or ""))
    elif key is not None and kind in (EventKind.HANDLER_RESULT, EventKind.ERROR_THROWN):
        result.failed.pop(key, None)
    if kind == EventKind.COMPLETED:
        result.status, result.ended_at = "completed", event.at
    elif kind == EventKind.CANCELLED:
        result.status, result.ended_at = "cancelled", event.at


def _explain(
    run: Run,
    data: Mapping[str, Any],
    rebuilt: Mapping[str, list[Any]] | None,
    later: Sequence[ChainedEvent],
) -> list[str]:
    """What differs, in the terms the history records: data keys, then tasks."""
    lines: list[str] = []
    recorded = data.get("changed")
    if isinstance(recorded, dict) and rebuilt is not None:
        for key in sorted(recorded.keys() | rebuilt.keys()):
            want = recorded[key][1] if key in recorded else _UNCHANGED
            got = rebuilt[key][1] if key in rebuilt else _UNCHANGED
            if _same(want, got):
                continue
            lines.append(f"data key '{key}': recorded {_quote(want)}, rebuilt {_quote(got)}")
    nxt = _next_task(later)
    if nxt is not None:
        event, path, ordinal = nxt
        open_refs = {(t.ref.path, t.ref.ordinal) for t in run.open_tasks()}
        if (path, ordinal) not in open_refs:
            lines.append(
                f"the history goes on at '{event.task_name or event.bpmn_id}' "
                f"[{event.bpmn_id}] (event {event.seq}, {event.kind}), which the rebuilt "
                "instance does not have open"
            )
    if lines:
        lines.extend(_open_lines(run))
    else:
        lines.append(
            "the data and the open tasks agree; the difference is in the engine's own "
            "bookkeeping (a task's state or internal data, a timer's due time)"
        )
        lines.extend(_open_lines(run))
    return lines


def _open_lines(run: Run | None) -> tuple[str, ...]:
    if run is None:
        return ()
    tasks = run.open_tasks()
    if not tasks:
        return ("the rebuilt instance has nothing open",)
    waits = ", ".join(f"'{t.name}' [{t.bpmn_id}, {t.kind}]" for t in tasks)
    return (f"the rebuilt instance waits at {waits}",)


def _next_task(later: Sequence[ChainedEvent]) -> tuple[ChainedEvent, str, int] | None:
    """The next event that acts on a task of the workflow, with that task's ref."""
    for event in later:
        if event.kind not in (
            EventKind.TASK_COMPLETED,
            EventKind.HANDLER_RESULT,
            EventKind.ERROR_THROWN,
        ):
            continue
        ref = load_data(event.data).get("ref")
        if isinstance(ref, dict):
            return event, str(ref["path"]), int(ref["ordinal"])
    return None


class _Unchanged:
    def __repr__(self) -> str:
        return "unchanged"


_UNCHANGED: Any = _Unchanged()


def _same(a: Any, b: Any) -> bool:
    if a is _UNCHANGED or b is _UNCHANGED:
        return a is b
    return canonical_json(a) == canonical_json(b)


def _quote(value: Any) -> str:
    if value is _UNCHANGED:
        return "no change"
    if value is None:
        return "nothing (the key is not there)"
    text = canonical_json(value)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def _names(timers: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(t.get("name") or t.get("bpmn_id")) for t in timers) or "none"


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


# -- a replay of a stored instance, and the instance as it stood -------------------------


@dataclass
class ReplayReport:
    """A replay of one stored instance: what was checked before (its definition, its
    chain), what the replay rebuilt, and where it stopped."""

    label: str
    process_id: str
    version: int
    total: int
    replayed: Replayed
    #: What does not hold apart from the replay itself (definition, chain).
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems and self.replayed.divergence is None

    def summary(self) -> str:
        done = len(self.replayed.applied)
        moves = [
            int(load_data(e.data)["to_version"])
            for e in self.replayed.applied
            if e.kind == EventKind.MIGRATED
        ]
        under = f"under {self.process_id} v{self.version}" + "".join(f" then v{v}" for v in moves)
        if not self.clean:
            return (
                f"{self.label}: the replay does not match its history "
                f"({done} of {self.total} events replayed)"
            )
        if done == self.total:
            return (
                f"{self.label}: replayed {done} events {under}; every state matched its "
                "recorded digest."
            )
        last = self.replayed.last
        when = f", {last.at.isoformat()}" if last is not None else ""
        return (
            f"{self.label}: replayed events 1 to {done} of {self.total} {under} (up to event "
            f"{done}{when}); every state matched its recorded digest."
        )

    def as_dict(self) -> dict[str, Any]:
        divergence = self.replayed.divergence
        return {
            "instance": self.label,
            "process_id": self.process_id,
            "version": self.version,
            "events": self.total,
            "replayed": len(self.replayed.applied),
            "clean": self.clean,
            "problems": list(self.problems),
            "divergence": divergence.as_dict() if divergence is not None else None,
        }


def definition_problems(
    event: ChainedEvent, where: str, content_hash: str, spec_json: str, elements: Sequence[Any]
) -> list[str]:
    """Whether the stored definition `where` is still the one the instance started
    under or moved to at `event`: the content hash the event recorded, and the hash of
    the stored spec itself."""
    from engine.canonical import sha256_hex

    problems: list[str] = []
    recorded = load_data(event.data).get("definition")
    how = "started under" if event.kind == EventKind.STARTED else "moved to"
    if isinstance(recorded, str) and recorded != content_hash:
        problems.append(
            f"{where} is stored with content hash {content_hash[:12]}, but the instance "
            f"{how} {recorded[:12]} (event {event.seq}): the definition was changed in "
            "place afterwards"
        )
    forms = [
        [e.get("process"), e.get("id"), e["form"]]
        for e in elements
        if isinstance(e, dict) and e.get("form") is not None
    ]
    recomputed = sha256_hex(spec_json + canonical_json(forms) if forms else spec_json)
    if recomputed != content_hash:
        problems.append(
            f"the stored spec of {where} does not match its content hash ({recomputed[:12]} "
            f"against {content_hash[:12]}): it was changed after it was deployed"
        )
    return problems


def view_at(
    instance: Any, replayed: Replayed, tasks: Sequence[Any], ids_now: Mapping[tuple[str, int], str]
) -> Any:
    """The instance as it stood after the last event replayed, as `show` gives it:
    `instance` is its stored row, `tasks` its task rows, `ids_now` the ids of the tasks
    open now by their refs (tasks the history names get the ids it recorded)."""
    from types import SimpleNamespace

    from engine.reading import OPEN_STATES
    from engine.runner import instance_data, projected_state
    from engine.views import SHORT_ID, InstanceView, TaskView

    run = replayed.run
    last = replayed.last
    if run is None or last is None:
        raise EngineError("nothing to show: no event was replayed")
    at = last.at
    rows = {t.id: t for t in tasks}
    open_views: list[TaskView] = []
    for task in run.open_tasks():
        key = (task.ref.path, task.ref.ordinal)
        task_id = replayed.task_ids.get(key) or ids_now.get(key) or _row_at(tasks, task, at)
        row = rows.get(task_id) if task_id else None
        claim = replayed.claims.get(key)
        failed = replayed.failed.get(key) if task.kind == "service" else None
        open_views.append(
            TaskView(
                id=task_id or "",
                short_id=(task_id or "")[:SHORT_ID],
                instance_id=instance.id,
                business_key=instance.business_key,
                bpmn_id=task.bpmn_id,
                name=task.name,
                kind=task.kind,
                role=row.role if row is not None else task.lane,
                state=projected_state(task, failed is not None, False),
                operator=task.operator,
                due_at=task.due_at,
                escalated_to=task.escalated_to,
                created_at=row.created_at if row is not None else None,
                ended_at=None,
                completed_by=None,
                attempts=failed[0] if failed else 0,
                error=failed[1] if failed else None,
                claimed_by=claim[0] if claim else None,
                claimed_at=claim[1] if claim else None,
            )
        )
    # In the order `show` gives them: as the task table has them, by when they opened.
    open_views.sort(key=lambda v: (v.created_at is None, v.created_at or at, v.id))
    shown = {v.id for v in open_views}
    # Steps done by then: those an event replayed names, and the waits (timers, message
    # catches, which no event names by id) that ended before then, or at that moment
    # when no later event shares it.
    named = {e.task_id for e in replayed.applied if e.task_id}
    moment_over = replayed.next_at is None or replayed.next_at > at
    done = [
        TaskView.of(t, instance.business_key)
        for t in tasks
        if t.ended_at is not None
        and t.state not in OPEN_STATES
        and t.id not in shown
        and (
            t.id in named
            or (
                t.kind not in ("user", "manual", "service")
                and (t.ended_at < at or (t.ended_at == at and moment_over))
            )
        )
    ]
    values = {
        "id": instance.id,
        "uid": instance.uid,
        "business_key": instance.business_key,
        "process_id": instance.process_id,
        "process_version": last.process_version,
        "status": replayed.status,
        "started_at": instance.started_at,
        "started_by": instance.started_by,
        "updated_at": at,
        "ended_at": replayed.ended_at,
        "next_timer_at": run.next_timer() if replayed.status == "running" else None,
        "incident_count": sum(1 for v in open_views if v.state == "FAILED"),
        "event_count": last.seq,
    }
    if replayed.status != "running":
        open_views = []
    return InstanceView.of(SimpleNamespace(**values), instance_data(run), open_views, done)


def _row_at(tasks: Sequence[Any], task: OpenTask, at: datetime) -> str | None:
    """The one task row of the step that was open at `at`, when only one fits."""
    fits = [
        t.id
        for t in tasks
        if t.bpmn_id == task.bpmn_id
        and t.created_at is not None
        and t.created_at <= at
        and (t.ended_at is None or t.ended_at >= at)
    ]
    return fits[0] if len(fits) == 1 else None
