"""The audit report of one instance: a single HTML page that needs nothing else.

The page shows the diagram of the process version the instance ran under, drawn from
the source files stored when that version was deployed (never today's files), with the
path it took: steps done, the step(s) where it stands, steps not taken. Each called
process the instance entered is drawn below with its own path. Then the timeline of
its events (time, actor, step, kind, what changed, the command that asked for it, the
event's hash), the result of recomputing the hash chain, the evidence files with their
SHA-256 and the notices sent (both given by the caller: the engine keeps neither).

The path comes from the instance's workflow as restored: every task it holds, with its
path of BPMN ids through the call activities it ran in (`Run.canonical`). A flow node
is `done` when a task of it completed, `current` when one is ready, started, waiting
(an armed timer or a message awaited) or failed, `not-taken` otherwise. The diagrams
record no flow taken, so a sequence flow is `done` when its source is done and its
target done or current. Gateways and events passed on the way are tasks too, so they
are marked like any step.

Everything is escaped (autoescape); the SVG is serialised by lxml, which escapes text.
No script, no style sheet, font or image is fetched: the style is in the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.canonical import load_data
from engine.diagram import BPMN, NOT_TAKEN, DiagramError, to_svg
from engine.errors import EngineError
from engine.history import Break
from engine.persistence import DefinitionRecord, SourceFileRecord
from engine.views import EventView, InstanceView
from engine.xmlsafe import parse_document

if TYPE_CHECKING:
    from engine.replay import ReplayReport

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "audit_report.html.j2"

DONE = "done"
CURRENT = "current"

# The task states `Run.canonical` records (SpiffWorkflow's numbers, which the state
# digest of every event already depends on): what each means for the path.
_STATES = {
    64: DONE,  # completed
    16: CURRENT,  # ready
    32: CURRENT,  # started (a call activity the instance is inside)
    8: CURRENT,  # waiting (a timer armed, a message awaited)
    128: CURRENT,  # failed
}
_RANK = {NOT_TAKEN: 0, DONE: 1, CURRENT: 2}

#: Event data that is bookkeeping, not a change: shown elsewhere or not at all.
_NOT_CHANGES = frozenset({"intent", "ref", "attempt", "definition", "business_key", "params"})
#: The longest value the timeline shows (the history's --json holds it whole).
VALUE_LIMIT = 200

#: A path of call activities: () for the top-level process, ("ship_back",) for the
#: process its call activity ship_back called, and so on.
Chain = tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """A deployed diagram file: its name and its text as stored."""

    name: str
    content: str


@dataclass(frozen=True)
class Diagram:
    """One process drawn for the page: its SVG, or why it could not be drawn."""

    process_id: str
    name: str
    file: str | None
    via: str  # the call activities it was called through ("" for the top level)
    svg: Markup | None
    problem: str | None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """Everything the page shows, read in one go by `Engine.audit_report`."""

    instance: InstanceView
    events: Sequence[EventView]
    sources: Sequence[Source]
    tasks: Sequence[tuple[str, int]]  # (path of BPMN ids, state) of every task
    broken: Break | None
    made_at: datetime
    evidence: Sequence[Mapping[str, Any]] = ()
    notices: Sequence[Mapping[str, Any]] = ()
    #: The replay of the history (`engine.replay`), when it was made.
    replay: ReplayReport | None = None


def deployed_sources(session: Session, definition_id: int) -> list[Source]:
    """The source files of a version as they were deployed (the definition's files)."""
    definition = session.get(DefinitionRecord, definition_id)
    if definition is None:
        return []
    wanted = {str(f["sha256"]): str(f["name"]) for f in definition.files}
    found = session.scalars(
        select(SourceFileRecord).where(SourceFileRecord.sha256.in_(list(wanted)))
    ).all()
    by_sha = {f.sha256: f.content for f in found}
    return [Source(name, by_sha[sha]) for sha, name in wanted.items() if sha in by_sha]


# -- the path ----------------------------------------------------------------------------


def path_states(tasks: Iterable[tuple[str, int]]) -> dict[Chain, dict[str, str]]:
    """Per call-activity chain, each BPMN id's state on the path: `current` over
    `done` when an element was both (a loop), neither when only predicted or cancelled."""
    states: dict[Chain, dict[str, str]] = {}
    for path, number in tasks:
        state = _STATES.get(number)
        if state is None:
            continue
        *callers, last = path.split(">")
        chain = tuple(segment.rsplit("/", 1)[-1] for segment in callers)
        element = last.rsplit("/", 1)[-1]
        known = states.setdefault(chain, {})
        if _RANK[state] > _RANK[known.get(element, NOT_TAKEN)]:
            known[element] = state
    return states


def _with_flows(data: str, filename: str, states: Mapping[str, str]) -> dict[str, str]:
    """The states of the flow nodes, and of each sequence flow whose source is done and
    whose target is done or current."""
    root = parse_document(data.encode("utf-8"), filename)
    marked = dict(states)
    for flow in root.iter(f"{{{BPMN}}}sequenceFlow"):
        source, target = (
            states.get(flow.get("sourceRef", "")),
            states.get(flow.get("targetRef", "")),
        )
        if source == DONE and target in (DONE, CURRENT):
            marked[str(flow.get("id"))] = DONE
    return marked


@dataclass(frozen=True)
class _Process:
    id: str
    name: str
    file: Source
    calls: dict[str, str]  # call activity id -> the process it calls


def _processes(sources: Sequence[Source]) -> dict[str, _Process]:
    found: dict[str, _Process] = {}
    for source in sources:
        if not source.name.endswith(".bpmn"):
            continue
        root = parse_document(source.content.encode("utf-8"), source.name)
        for process in root.iter(f"{{{BPMN}}}process"):
            calls = {
                str(c.get("id")): str(c.get("calledElement"))
                for c in process.iter(f"{{{BPMN}}}callActivity")
                if c.get("calledElement")
            }
            pid = str(process.get("id"))
            found.setdefault(pid, _Process(pid, process.get("name") or pid, source, calls))
    return found


def diagrams(
    sources: Sequence[Source], top: str, states: Mapping[Chain, Mapping[str, str]]
) -> list[Diagram]:
    """The top-level process's diagram, then each called process the instance entered,
    in the order it was reached (deeper chains after the ones that called them)."""
    processes = _processes(sources)
    drawn: list[Diagram] = []
    chains = sorted({(), *states}, key=lambda c: (len(c), _first_step(c, states)))
    for chain in chains:
        process_id: str | None = top
        for caller in chain:  # follow the call activities down
            known = processes.get(process_id or "")
            process_id = known.calls.get(caller) if known else None
        via = " → ".join(chain)
        process = processes.get(process_id or "")
        if process is None:
            if chain:
                drawn.append(
                    Diagram(
                        process_id or "?",
                        process_id or "?",
                        None,
                        via,
                        None,
                        "its diagram is not among the files this version was deployed with",
                    )
                )
            continue
        marked = _with_flows(process.file.content, process.file.name, states.get(chain, {}))
        try:
            drawing = to_svg(process.file.content, process.file.name, marked)
            # lxml wrote it, escaping every text and attribute: it goes in as it is.
            svg: Markup | None = Markup(drawing)  # noqa: S704
            problem = None
        except DiagramError as exc:
            svg, problem = None, str(exc)
        counts = {state: list(marked.values()).count(state) for state in (DONE, CURRENT)}
        drawn.append(
            Diagram(process.id, process.name, process.file.name, via, svg, problem, counts)
        )
    return drawn


def _first_step(chain: Chain, states: Mapping[Chain, Mapping[str, str]]) -> int:
    """Where a chain's last call activity stands among its parent's steps (first drawn first)."""
    if not chain:
        return -1
    parent = list(states.get(chain[:-1], {}))
    return parent.index(chain[-1]) if chain[-1] in parent else len(parent)


# -- the timeline ------------------------------------------------------------------------


def _value(raw: Any) -> str:
    """A stored value as people write it: {"$decimal": "1200.00"} as 1200.00."""
    value = load_data(json.dumps(raw))
    if value is None:
        text = "—"
    elif isinstance(value, str):
        text = value if value else '""'
    elif isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def changes(event: EventView) -> list[tuple[str, str, str | None]]:
    """What an event changed, as (what, value or after, before): the keys a step changed
    with their values before (recorded since replay came; before that, a handler's
    result); the data an instance started with; a message's payload; every other
    detail the event records."""
    data = event.data
    rows: list[tuple[str, str, str | None]] = []
    changed = data.get("changed")
    if isinstance(changed, dict):
        for key, pair in sorted(changed.items()):
            old, new = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
            rows.append((key, _value(new), _value(old)))
    # What the changes already say: a completed task's data, a handler's result. The data
    # an instance started with comes before what its first steps made of it.
    covered = {"data", "result"} if changed is not None and event.kind != "started" else set()
    for nested in ("data", "result", "payload"):
        inner = data.get(nested)
        if isinstance(inner, dict) and nested not in covered:
            rows += [(key, _value(v), None) for key, v in sorted(inner.items())]
    skip = _NOT_CHANGES | {"changed", "data", "result", "payload"}
    rows += [(key, _value(v), None) for key, v in sorted(data.items()) if key not in skip]
    return rows


# -- the page ----------------------------------------------------------------------------


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["time"] = _time


def render(report: Report) -> str:
    """The page, as HTML text."""
    view = report.instance
    try:
        drawn = diagrams(report.sources, view.process_id, path_states(report.tasks))
    except EngineError as exc:  # a stored file that no longer parses: say so, keep the rest
        drawn = [Diagram(view.process_id, view.process_id, None, "", None, str(exc))]
    return _ENV.get_template(TEMPLATE).render(
        view=view,
        label=view.label,
        diagrams=drawn,
        events=[(e, changes(e)) for e in report.events],
        broken=report.broken,
        head=report.events[-1].hash if report.events else None,
        evidence=report.evidence,
        notices=report.notices,
        made_at=report.made_at,
        replay=report.replay,
    )


__all__ = [
    "CURRENT",
    "DONE",
    "NOT_TAKEN",
    "Diagram",
    "Report",
    "Source",
    "changes",
    "deployed_sources",
    "diagrams",
    "path_states",
    "render",
]
