"""The procedure's indicators, computed from the recorded history (`artreturns report`).

Everything here is read from the `instance`, `task` and `event` tables (and, for return
rates, the orders loaded with `orders import`), never from counters kept on the side.
What each indicator means and how it is computed, precisely, is in docs/monitoring.md;
the short version:

- **The returns counted** are the instances of the return process *started* in the
  window [since, until): a cohort. In flight is as of `now`.
- **Times** are whole seconds. A person's step (a user or manual task that was
  completed) *waits* from its creation until it was claimed, or until it ended when
  nobody claimed it, and is *worked* from the claim until it ended. Percentiles are by
  nearest rank: the value at rank ceil(p * n) of the n values sorted.
- **Money** is summed per currency, as `Decimal`.

Task and event figures are grouped in SQL (the durations of each step come back as
one joined text per step and role, for the percentiles); the few fields of a return's
data the indicators need are read with one JSON parse per return and aggregated in one
pass (on a second connection while the first reads the tasks and the history). On
SQLite that parse is `json_extract` over the data, every path at once; on PostgreSQL it
is of `instance.report_data`, those fields alone, which every save writes beside the
data (REPORT_PATHS). docs/monitoring.md says what each query costs.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Select,
    Table,
    Text,
    and_,
    case,
    column,
    func,
    inspect,
    or_,
    select,
    table,
    true,
)
from sqlalchemy import cast as sql_cast

from engine.canonical import dump_tagged
from engine.persistence.records import EventRecord, InstanceRecord, TaskRecord

INSTANCE = cast(Table, InstanceRecord.__table__)
TASK = cast(Table, TaskRecord.__table__)
EVENT = cast(Table, EventRecord.__table__)

#: What `--by` may name: a field of the return (instance-level sections are grouped by
#: it) or a dimension of the task sections (only that breakdown is shown).
RETURN_DIMENSIONS = ("category", "reason", "channel")
TASK_DIMENSIONS = ("role", "step")
DIMENSIONS = RETURN_DIMENSIONS + TASK_DIMENSIONS

#: A category is flagged when its return rate is more than FLAG_FACTOR times the rate
#: of all categories together, with at least FLAG_MIN_RETURNS returns.
FLAG_FACTOR = 2
FLAG_MIN_RETURNS = 5
#: How many of the slowest steps are named as bottlenecks.
BOTTLENECKS = 3
#: The tickets that count as declined (the house said no).
DECLINED = ("declined", "rejected")
PEOPLE_KINDS = ("user", "manual")
OPEN_STATES = ("READY", "QUEUED", "FAILED", "WAITING")
HANDLER_EVENTS = ("handler_result", "handler_failed", "error_thrown")
MONEY_KINDS = (
    "refunded",
    "restocking_fees",
    "shipping_subsidies",
    "insurance_recovered",
    "charged",
)
#: Shown when there is no value, in place of one.
NONE = "-"


@dataclass(frozen=True)
class ReturnPaths:
    """Where the indicators find what they need in a return's data (dotted paths), and
    which process and step they read. The defaults are the return procedure's
    (docs/processes.md); another procedure passes its own."""

    process: str | None = "return_request"
    #: The wait for the customer's answer to the survey: a return that reached it was
    #: asked for a score.
    survey_step: str = "wait_confirmation"
    category: str = "artwork.category"
    artist: str = "artwork.artist"
    reason: str = "request.reason"
    channel: str = "order.channel"
    ticket: str = "rma_closed.rma_status"
    refunded_amount: str = "refunded.amount.amount"
    refunded_currency: str = "refunded.amount.currency"
    refunded_at: str = "refunded.paid_at"
    refund_deadline: str = "refund.deadline"
    refund_currency: str = "refund.amount.currency"
    restocking_fee: str = "refund.breakdown.restocking_fee.amount"
    shipping_refunded: str = "refund.breakdown.shipping_refunded.amount"
    recovered_amount: str = "insurance_claim.recovered.amount"
    recovered_currency: str = "insurance_claim.recovered.currency"
    charged_amount: str = "charged.amount.amount"
    charged_currency: str = "charged.amount.currency"
    score: str = "confirmation.score"
    inspection: str = "inspection.outcome"
    dispute: str = "dispute_outcome"
    #: The orders loaded (`orders import`): a table with one row per work sold.
    sold_table: str = "sales_artwork"

    def data_paths(self) -> dict[str, str]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("process", "survey_step", "sold_table")
        }


#: The data paths kept apart, beside each instance's data, in `instance.report_data`:
#: the default ReturnPaths'. Every save writes their values there (as the stored data
#: holds them, keyed by path), so that the report reads a few hundred bytes a return
#: rather than parsing the whole data (measured on PostgreSQL with 100,000 returns:
#: docs/benchmarks.md). A report asked for with other paths reads the data itself.
#: Changing this list needs a schema revision that writes the column again, as 0012 did.
REPORT_PATHS: tuple[str, ...] = tuple(ReturnPaths().data_paths().values())


def report_data(tagged: Any) -> str | None:
    """`instance.report_data` for data as stored (`canonical.tag_data`): the value at
    each of REPORT_PATHS (null where there is none), as JSON text keyed by path; None
    for data that is not stored (the report then finds nothing in it either)."""
    if tagged is None:
        return None
    return dump_tagged(dict(zip(REPORT_PATHS, _REPORT_PICK(tagged), strict=True)))


# -- the data structure ------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """`part` of `whole`; `value` is the share, None when `whole` is zero."""

    part: int
    whole: int

    @property
    def value(self) -> Decimal | None:
        if not self.whole:
            return None
        return (Decimal(self.part) / Decimal(self.whole)).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class Durations:
    """`count` durations in whole seconds: their sum, median and 90th percentile (by
    nearest rank); None when there are none."""

    count: int = 0
    total: int = 0
    median: int | None = None
    p90: int | None = None

    @property
    def mean(self) -> int | None:
        return round(self.total / self.count) if self.count else None


@dataclass(frozen=True)
class Amount:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Window:
    """What was counted: returns of `process` started from `since` (inclusive) to
    `until` (exclusive), as they stood at `now`; `by` the breakdown asked for."""

    since: datetime | None
    until: datetime | None
    now: datetime
    by: str | None
    process: str | None


@dataclass(frozen=True)
class GroupVolume:
    group: str
    opened: int
    closed: int
    declined: int
    in_flight: int
    end_to_end: Durations


@dataclass(frozen=True)
class ReturnRate:
    """Returns whose (first) work is of `group` against the works of `group` sold on
    the orders loaded; `dimension` is "category" or "artist"."""

    dimension: str
    group: str
    rate: Rate


@dataclass(frozen=True)
class Volume:
    opened: int
    closed: int
    declined: int
    lapsed: int
    in_flight: int
    #: Grouped by `dimension` (the `--by` field of the return, else the category).
    dimension: str
    by_group: tuple[GroupVolume, ...]
    orders_loaded: bool
    return_rates: tuple[ReturnRate, ...]


@dataclass(frozen=True)
class StepTime:
    step: str
    name: str
    role: str
    waiting: Durations
    working: Durations
    total: Durations


@dataclass(frozen=True)
class RoleTime:
    role: str
    waiting: Durations
    working: Durations
    total: Durations


@dataclass(frozen=True)
class Time:
    #: Started to completed, over the returns completed.
    end_to_end: Durations
    steps: tuple[StepTime, ...]
    roles: tuple[RoleTime, ...]
    #: The steps with the longest median time (waiting and working), slowest first.
    bottlenecks: tuple[str, ...]


@dataclass(frozen=True)
class StepDeadlines:
    step: str
    name: str
    role: str
    #: Tasks of the step with a due time; those that ended after it or are still open
    #: past it (`breached`, of which `open` still open); those escalated.
    with_due: int
    breached: int
    open: int
    escalated: int


@dataclass(frozen=True)
class RoleDeadlines:
    role: str
    with_due: int
    breached: int
    open: int
    escalated: int


@dataclass(frozen=True)
class LateRefund:
    rma: str
    deadline: date
    #: When it was paid; None for a refund not paid with its deadline passed.
    paid_at: datetime | None


@dataclass(frozen=True)
class Deadlines:
    steps: tuple[StepDeadlines, ...]
    roles: tuple[RoleDeadlines, ...]
    breached: Rate
    escalated: int
    #: Refunds worked out with a legal deadline; those paid after it; those not paid
    #: and past it. Both lists must be empty.
    refunds_due: int
    paid_late: tuple[LateRefund, ...]
    unpaid_overdue: tuple[LateRefund, ...]


@dataclass(frozen=True)
class Count:
    key: str
    count: int


@dataclass(frozen=True)
class StepErrors:
    step: str
    name: str
    calls: int
    failed: int
    open_incidents: int


@dataclass(frozen=True)
class Quality:
    inspections: tuple[Count, ...]
    disputes: tuple[Count, ...]
    #: Handler attempts (results, failures and BPMN errors thrown) and the failed ones.
    error_rate: Rate
    #: Service tasks failed for good and still open (`artreturns incidents`).
    open_incidents: int
    #: Returns with at least one failed attempt.
    returns_with_failures: int
    steps: tuple[StepErrors, ...]


@dataclass(frozen=True)
class GroupScore:
    group: str
    responses: Rate
    mean: Decimal | None


@dataclass(frozen=True)
class Customers:
    #: Returns that answered the survey, of those that reached it.
    responses: Rate
    scores: tuple[Count, ...]
    mean: Decimal | None
    by_group: tuple[GroupScore, ...]


@dataclass(frozen=True)
class MoneyLine:
    kind: str
    amount: Amount
    #: How many returns it adds up.
    count: int


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    category: str
    channel: str
    count: int


@dataclass(frozen=True)
class Flag:
    category: str
    rate: Rate
    overall: Rate


@dataclass(frozen=True)
class Reasons:
    counts: tuple[ReasonCount, ...]
    flagged: tuple[Flag, ...]
    rule: str = (
        f"a category whose return rate is more than {FLAG_FACTOR} times the rate of all "
        f"categories, with at least {FLAG_MIN_RETURNS} returns (needs orders loaded)"
    )


@dataclass(frozen=True)
class Row:
    """One line of the CSV form: one indicator, for one group."""

    section: str
    indicator: str
    group: str
    value: str
    unit: str
    currency: str = ""


@dataclass(frozen=True)
class Indicators:
    window: Window
    volume: Volume
    time: Time
    deadlines: Deadlines
    quality: Quality
    customers: Customers
    money: tuple[MoneyLine, ...]
    reasons: Reasons

    def as_data(self) -> dict[str, Any]:
        """JSON-safe: Decimal and dates as text, rates with their value, durations with
        their mean."""
        return cast(dict[str, Any], _plain(self))

    def rows(self) -> list[Row]:
        return list(_rows(self))

    @property
    def alarms(self) -> list[str]:
        """What must be zero and is not, in words, for a report to show first."""
        found = []
        if self.deadlines.paid_late:
            found.append(
                f"{len(self.deadlines.paid_late)} refund(s) paid after their legal deadline: "
                + ", ".join(r.rma for r in self.deadlines.paid_late[:10])
            )
        if self.deadlines.unpaid_overdue:
            found.append(
                f"{len(self.deadlines.unpaid_overdue)} refund(s) not paid and past their "
                "legal deadline: " + ", ".join(r.rma for r in self.deadlines.unpaid_overdue[:10])
            )
        return found


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Rate):
            out["value"] = _plain(value.value)
        if isinstance(value, Durations):
            out["mean"] = value.mean
        return out
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value)


def _duration_rows(section: str, name: str, group: str, d: Durations) -> Iterable[Row]:
    yield Row(section, f"{name}_count", group, str(d.count), "tasks")
    for what in ("median", "p90", "mean"):
        value = getattr(d, what)
        yield Row(section, f"{name}_{what}", group, _text(value), "seconds")


def _rows(ind: Indicators) -> Iterable[Row]:
    v = ind.volume
    for name in ("opened", "closed", "declined", "lapsed", "in_flight"):
        yield Row("volume", name, "", str(getattr(v, name)), "returns")
    for g in v.by_group:
        group = f"{v.dimension}={g.group}"
        for name in ("opened", "closed", "declined", "in_flight"):
            yield Row("volume", name, group, str(getattr(g, name)), "returns")
    for r in v.return_rates:
        yield Row("volume", "return_rate", f"{r.dimension}={r.group}", _text(r.rate.value), "share")
    t = ind.time
    yield from _duration_rows("time", "end_to_end", "", t.end_to_end)
    for g in v.by_group:
        yield from _duration_rows("time", "end_to_end", f"{v.dimension}={g.group}", g.end_to_end)
    for s in t.steps:
        for what in ("waiting", "working", "total"):
            yield from _duration_rows("time", what, f"step={s.step}", getattr(s, what))
    for rt in t.roles:
        for what in ("waiting", "working", "total"):
            yield from _duration_rows("time", what, f"role={rt.role}", getattr(rt, what))
    for rank, step in enumerate(t.bottlenecks, 1):
        yield Row("time", "bottleneck", f"rank={rank}", step, "step")
    d = ind.deadlines
    yield Row("deadlines", "sla_breach_rate", "", _text(d.breached.value), "share")
    yield Row("deadlines", "sla_breaches", "", str(d.breached.part), "tasks")
    yield Row("deadlines", "escalations", "", str(d.escalated), "tasks")
    for sd in d.steps:
        for name in ("with_due", "breached", "open", "escalated"):
            yield Row("deadlines", name, f"step={sd.step}", str(getattr(sd, name)), "tasks")
    for rd in d.roles:
        for name in ("with_due", "breached", "open", "escalated"):
            yield Row("deadlines", name, f"role={rd.role}", str(getattr(rd, name)), "tasks")
    yield Row("deadlines", "refunds_due", "", str(d.refunds_due), "returns")
    yield Row("deadlines", "refunds_paid_late", "", str(len(d.paid_late)), "returns")
    yield Row("deadlines", "refunds_unpaid_overdue", "", str(len(d.unpaid_overdue)), "returns")
    q = ind.quality
    for c in q.inspections:
        yield Row("quality", "inspection", f"outcome={c.key}", str(c.count), "returns")
    for c in q.disputes:
        yield Row("quality", "dispute", f"outcome={c.key}", str(c.count), "returns")
    yield Row("quality", "handler_calls", "", str(q.error_rate.whole), "attempts")
    yield Row("quality", "failed_attempts", "", str(q.error_rate.part), "attempts")
    yield Row("quality", "error_rate", "", _text(q.error_rate.value), "share")
    yield Row("quality", "open_incidents", "", str(q.open_incidents), "tasks")
    yield Row("quality", "returns_with_failures", "", str(q.returns_with_failures), "returns")
    for se in q.steps:
        yield Row("quality", "failed_attempts", f"step={se.step}", str(se.failed), "attempts")
    cu = ind.customers
    yield Row("customers", "asked", "", str(cu.responses.whole), "returns")
    yield Row("customers", "responses", "", str(cu.responses.part), "returns")
    yield Row("customers", "response_rate", "", _text(cu.responses.value), "share")
    yield Row("customers", "mean_score", "", _text(cu.mean), "score")
    for sc in cu.scores:
        yield Row("customers", "score", f"score={sc.key}", str(sc.count), "returns")
    for gs in cu.by_group:
        group = f"{v.dimension}={gs.group}"
        yield Row("customers", "response_rate", group, _text(gs.responses.value), "share")
        yield Row("customers", "mean_score", group, _text(gs.mean), "score")
    for m in ind.money:
        yield Row("money", m.kind, "", str(m.amount.amount), "amount", m.amount.currency)
    for rc in ind.reasons.counts:
        group = f"reason={rc.reason};category={rc.category};channel={rc.channel}"
        yield Row("reasons", "returns", group, str(rc.count), "returns")
    for f in ind.reasons.flagged:
        yield Row("reasons", "flagged", f"category={f.category}", _text(f.rate.value), "share")


# -- SQL helpers -------------------------------------------------------------------------


def _epoch(conn: Connection, col: ColumnElement[Any]) -> ColumnElement[int]:
    """A time as whole seconds since 1970 (truncated), on either database."""
    if conn.dialect.name == "sqlite":
        if sqlite3.sqlite_version_info >= (3, 38):
            # Measured on 374,000 tasks: a third of strftime's cost, which parses the
            # time, formats the number as text and casts it back.
            return cast(ColumnElement[int], func.unixepoch(col))
        return sql_cast(func.strftime("%s", col), Integer)
    return sql_cast(func.floor(func.extract("epoch", col)), BigInteger)


def _cohort(window: Window) -> list[ColumnElement[bool]]:
    """The conditions on `instance` that choose the returns counted."""
    where = []
    if window.process is not None:
        where.append(INSTANCE.c.process_id == window.process)
    if window.since is not None:
        where.append(INSTANCE.c.started_at >= window.since)
    if window.until is not None:
        where.append(INSTANCE.c.started_at < window.until)
    return where


def _nearest_rank(values: Sequence[int], share: int) -> int:
    """The value at rank ceil(share/10 * n) of `values` sorted (share in tenths)."""
    rank = (len(values) * share + 9) // 10
    return values[max(rank, 1) - 1]


def durations(values: Iterable[int]) -> Durations:
    ordered = sorted(values)
    if not ordered:
        return Durations()
    return Durations(
        len(ordered), sum(ordered), _nearest_rank(ordered, 5), _nearest_rank(ordered, 9)
    )


# -- computing ---------------------------------------------------------------------------


def compute(
    conn: Connection,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    by: str | None = None,
    paths: ReturnPaths | None = None,
    parallel: bool = True,
) -> Indicators:
    """Every indicator over the returns started in [since, until), as they stood at
    `now`, read on `conn` (SQLite or PostgreSQL).

    With `parallel`, the returns' data is read on a second connection while `conn`
    reads the tasks and the history, so that the database and Python work at the same
    time; the two reads may then see the database a moment apart (a command that lands
    in between counts in one and not yet in the other)."""
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"unknown breakdown {by!r}; one of {', '.join(DIMENSIONS)}")
    paths = paths or ReturnPaths()
    window = Window(since, until, now, by, paths.process)
    cohort = _cohort_ids(conn, window)
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = (
            pool.submit(_returns_apart, conn, _cohort(window), paths)
            if parallel and _shareable(conn)
            else None
        )
        sold = _sold(conn, paths)
        tasks = _tasks(conn, cohort, now, paths)
        calls = _handler_calls(conn, cohort)
        returns = reading.result() if reading else _returns(conn, _cohort(window), paths)
    dimension = by if by in RETURN_DIMENSIONS else "category"
    steps, roles = _times(tasks)
    return Indicators(
        window=window,
        volume=_volume(returns, dimension, sold),
        time=Time(
            end_to_end=durations(t for t in returns.took if t is not None),
            steps=steps,
            roles=roles,
            bottlenecks=tuple(
                s.step
                for s in sorted(
                    (s for s in steps if s.total.median is not None),
                    key=lambda s: (-(s.total.median or 0), s.step),
                )[:BOTTLENECKS]
            ),
        ),
        deadlines=_deadlines(tasks, now, returns),
        quality=_quality(calls, tasks, returns),
        customers=_customers(tasks, returns, dimension),
        money=_money(returns),
        reasons=_reasons(returns, sold),
    )


def _shareable(conn: Connection) -> bool:
    """Whether the returns can be read on a second connection: on PostgreSQL the server
    works for each connection in a process of its own, and SQLite's driver lets go of
    the interpreter while a statement runs (measured on 100,000 returns with nothing
    else running: 2.8 to 3.1 s against 3.8 to 4.0 s on one connection). Not for a
    SQLite database in memory, which a second connection would not see."""
    if conn.dialect.name != "sqlite":
        return True
    database = conn.engine.url.database
    return bool(database) and database != ":memory:" and "mode=memory" not in str(conn.engine.url)


def _returns_apart(
    conn: Connection, cohort: list[ColumnElement[bool]], paths: ReturnPaths
) -> _Returns:
    with conn.engine.connect() as other:
        return _returns(other, cohort, paths)


def _joined(conn: Connection, value: ColumnElement[Any]) -> ColumnElement[str]:
    """The group's values (text) as one text, comma-separated, in no particular order;
    NULLs are left out, and a group of none gives NULL."""
    if conn.dialect.name == "sqlite":
        return func.group_concat(value, ",")
    return func.string_agg(value, ",")


def _cohort_ids(conn: Connection, window: Window) -> Select[tuple[int]] | None:
    """The cohort's instance ids as a query; None when it is every instance in the
    database (no period asked for and no instance of another process), so that tasks and
    events are counted without looking each one's instance up."""
    conditions = _cohort(window)
    if window.since is None and window.until is None:
        others = select(INSTANCE.c.id).limit(1)
        if window.process is not None:
            others = others.where(INSTANCE.c.process_id != window.process)
        if window.process is None or conn.execute(others).first() is None:
            return None
    return select(INSTANCE.c.id).where(*conditions)


def _in(col: ColumnElement[int], cohort: Select[tuple[int]] | None) -> ColumnElement[bool]:
    """`col` among the cohort's instances (true for every one when `cohort` is None),
    by a scan rather than an index: the cohort is most of the table, and SQLite would
    otherwise look every row up by its index."""
    if cohort is None:
        return true()
    return (col + 0).in_(cohort)


class _Returns:
    """The returns counted, column by column: each return's id, RMA, status and time
    taken (seconds from start to end, when it completed), and each field of its data
    (the names of `ReturnPaths.data_paths`) as stored. Read column-wise so that each
    indicator is one pass over plain lists rather than a lookup per return and field."""

    def __init__(
        self,
        ids: Sequence[int],
        rmas: Sequence[str],
        status: Sequence[str],
        took: Sequence[int | None],
        values: Mapping[str, Sequence[Any]],
    ) -> None:
        self.ids, self.rmas, self.status, self.took = ids, rmas, status, took
        self.values = values
        self._texts: dict[str, list[str]] = {}
        self._decimals: dict[str, list[Decimal | None]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, name: str) -> list[str]:
        """The field as text for grouping: NONE where it is missing or empty."""
        if name not in self._texts:
            self._texts[name] = [
                v if type(v) is str and v else NONE if v is None or v == "" else str(v)
                for v in self.values[name]
            ]
        return self._texts[name]

    def decimal(self, name: str) -> list[Decimal | None]:
        """The field as a Decimal (a tagged {"$decimal": text} too); None where it is
        missing or not a number."""
        if name not in self._decimals:
            self._decimals[name] = [None if v is None else _decimal(v) for v in self.values[name]]
        return self._decimals[name]


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, dict) and "$decimal" in value:
        value = value["$decimal"]
    if value is None or isinstance(value, bool | dict | list):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _returns(conn: Connection, cohort: list[ColumnElement[bool]], paths: ReturnPaths) -> _Returns:
    names = list(paths.data_paths())
    dotted = [paths.data_paths()[n] for n in names]
    started = _epoch(conn, INSTANCE.c.started_at)
    ended = _epoch(conn, INSTANCE.c.ended_at)
    base = [
        INSTANCE.c.id,
        INSTANCE.c.business_key,
        INSTANCE.c.status,
        (ended - started).label("took"),
    ]
    nothing = [None] * len(names)
    loads = orjson.loads
    pick = _picker([path.split(".") for path in dotted])
    decoded: Iterable[Sequence[Any]]
    if conn.dialect.name == "sqlite":
        # One parse of the data in C per return, whatever the number of paths. (The
        # fields kept apart are not read here: SQLite added their column after the
        # state, and reading it would read through the state's overflow pages.)
        extracted = func.json_extract(INSTANCE.c.data, *["$." + path for path in dotted])
        rows = conn.execute(select(*base, extracted).where(*cohort)).all()
        if not rows:
            return _Returns([], [], [], [], {name: [] for name in names})
        ids, rmas, status, took, texts = zip(*rows, strict=True)
        decoded = [_as_list(loads(text)) if text else nothing for text in texts]
    elif set(dotted) <= set(REPORT_PATHS):
        # PostgreSQL: the fields kept apart at save time, a few hundred bytes rather
        # than the whole data; the data only for an instance that has none kept.
        rows = conn.execute(
            select(
                *base,
                INSTANCE.c.report_data,
                case((INSTANCE.c.report_data.is_(None), INSTANCE.c.data)),
            ).where(*cohort)
        ).all()
        if not rows:
            return _Returns([], [], [], [], {name: [] for name in names})
        ids, rmas, status, took, kept, texts = zip(*rows, strict=True)
        wanted = itemgetter(*dotted) if len(dotted) > 1 else lambda d: (d[dotted[0]],)

        def fields(k: str | None, text: str | None) -> Sequence[Any]:
            if k is None:
                return pick(loads(text)) if text else nothing
            found = loads(k)
            try:
                return wanted(found)  # every path is there: one call in C
            except (KeyError, TypeError):  # written by hand or by an older list
                return [found.get(p) for p in dotted] if type(found) is dict else nothing

        decoded = map(fields, kept, texts)
    else:
        # Other paths on PostgreSQL: the text is parsed here, faster than as jsonb.
        rows = conn.execute(select(*base, INSTANCE.c.data).where(*cohort)).all()
        if not rows:
            return _Returns([], [], [], [], {name: [] for name in names})
        ids, rmas, status, took, texts = zip(*rows, strict=True)
        decoded = [pick(loads(text)) if text else nothing for text in texts]
    return _Returns(
        ids,
        [key or f"#{number}" for number, key in zip(ids, rmas, strict=True)],
        status,
        [t if s == "completed" else None for s, t in zip(status, took, strict=True)],
        dict(zip(names, zip(*decoded, strict=True), strict=True)),
    )


def _as_list(value: Any) -> list[Any]:
    """json_extract's answer: an array of the values, or the value itself for one path."""
    return value if isinstance(value, list) else [value]


def _picker(keys: Sequence[Sequence[str]]) -> Callable[[Any], list[Any]]:
    """A function that takes the values at every path of `keys` from a return's stored
    data in one walk (paths sharing a start share the steps); None where there is
    none. A dict the data tagged as {"$dict": ...} is looked into."""
    trie: dict[Any, Any] = {}
    for index, path in enumerate(keys):
        node = trie
        for key in path:
            node = node.setdefault(key, {})
        node[None] = index

    def fill(data: Any, node: dict[Any, Any], out: list[Any]) -> None:
        for key, below in node.items():
            if key is None:
                out[below] = data
            elif type(data) is dict:
                value = data.get(key)
                if value is None and "$dict" in data and len(data) == 1:
                    value = data["$dict"].get(key)
                if value is not None:
                    fill(value, below, out)

    def pick(data: Any) -> list[Any]:
        out: list[Any] = [None] * len(keys)
        fill(data, trie, out)
        return out

    return pick


_REPORT_PICK = _picker([path.split(".") for path in REPORT_PATHS])


def _sold(conn: Connection, paths: ReturnPaths) -> dict[str, Counter[str]]:
    """Works sold per category and per artist, from the orders loaded; empty without."""
    if not inspect(conn).has_table(paths.sold_table):
        return {}
    sold = table(paths.sold_table, column("category"), column("artist"))
    counts: dict[str, Counter[str]] = {"category": Counter(), "artist": Counter()}
    pairs = select(sold.c.category, sold.c.artist, func.count()).group_by(
        sold.c.category, sold.c.artist
    )
    for category, artist, n in conn.execute(pairs):  # one scan for both
        counts["category"][str(category)] += int(n)
        counts["artist"][str(artist)] += int(n)
    return counts if any(counts.values()) else {}


def _volume(returns: _Returns, dimension: str, sold: Mapping[str, Counter[str]]) -> Volume:
    # group -> [opened, closed, declined, in flight], and the completed ones' times
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    took: dict[str, list[int]] = defaultdict(list)
    lapsed = 0
    for group, status, ticket, seconds in zip(
        returns.text(dimension), returns.status, returns.text("ticket"), returns.took, strict=True
    ):
        tally = tallies[group]
        tally[0] += 1
        if status == "running":
            tally[3] += 1
        else:
            tally[1] += 1
            if ticket in DECLINED:
                tally[2] += 1
            elif ticket == "lapsed":
                lapsed += 1
        if seconds is not None:
            took[group].append(seconds)
    by_group = tuple(
        GroupVolume(name, t[0], t[1], t[2], t[3], durations(took[name]))
        for name, t in sorted(tallies.items())
    )
    opened, closed, declined, in_flight = (sum(t[i] for t in tallies.values()) for i in range(4))
    rates = []
    for dim in ("category", "artist") if sold else ():
        returned = Counter(returns.text(dim))
        for name in sorted(set(returned) | set(sold[dim])):
            if sold[dim].get(name):
                rates.append(ReturnRate(dim, name, Rate(returned.get(name, 0), sold[dim][name])))
    return Volume(
        opened, closed, declined, lapsed, in_flight, dimension, by_group, bool(sold), tuple(rates)
    )


class _Tasks(NamedTuple):
    """What the indicators read of the task table."""

    #: (step, role) -> waiting, working and total seconds of each completed step.
    spent: dict[tuple[str, str], tuple[list[int], list[int], list[int]]]
    #: (step, role) -> tasks with a due time, breached, open and late, escalated.
    due: dict[tuple[str, str], tuple[int, int, int, int]]
    names: dict[str, str]
    #: step -> failed tasks still open (incidents), and the steps' names.
    failed: dict[str, int]
    #: The instances that reached the survey's wait.
    asked: set[int]


def _tasks(
    conn: Connection, cohort: Select[tuple[int]] | None, now: datetime, paths: ReturnPaths
) -> _Tasks:
    """In one scan of the cohort's people's tasks (user and manual, but those
    cancelled), grouped by step and role: their due times counted and the waiting,
    working and total time of each one completed (each list joined in one text: every
    value is needed for the percentiles, and a row each would cost far more). Then the
    instances that reached the survey's wait, and the failed tasks, through their
    index."""
    is_people = and_(TASK.c.kind.in_(PEOPLE_KINDS), TASK.c.state != "CANCELLED")
    created = _epoch(conn, TASK.c.created_at)
    claimed = _epoch(conn, TASK.c.claimed_at)
    ended = _epoch(conn, TASK.c.ended_at)
    never_claimed = TASK.c.claimed_at.is_(None)
    waited = case((never_claimed, ended), else_=claimed) - created
    worked = case((never_claimed, 0), else_=ended - claimed)
    # Every condition below is within people's tasks, the rows the query reads.
    done = and_(TASK.c.state == "COMPLETED", TASK.c.ended_at.is_not(None))
    has_due = TASK.c.due_at.is_not(None)
    is_open = and_(TASK.c.ended_at.is_(None), TASK.c.state.in_(OPEN_STATES))
    open_late = and_(is_open, TASK.c.due_at < now)
    late = or_(and_(TASK.c.ended_at.is_not(None), TASK.c.ended_at > TASK.c.due_at), open_late)

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((condition, 1), else_=0))

    def each(value: ColumnElement[Any]) -> ColumnElement[str]:
        return _joined(conn, case((done, sql_cast(value, Text))))

    grouped = (
        select(
            TASK.c.bpmn_id,
            TASK.c.role,
            func.max(TASK.c.name),
            # Three lists of the completed tasks' seconds, each parsed on its own:
            # waiting, working and the total (creation to end, their sum).
            each(waited),
            each(worked),
            each(ended - created),
            count(has_due),
            count(and_(has_due, late)),
            count(and_(has_due, open_late)),
            count(and_(has_due, TASK.c.escalated_to.is_not(None))),
        )
        .where(is_people, _in(TASK.c.instance_id, cohort))
        .group_by(TASK.c.bpmn_id, TASK.c.role)
    )
    spent: dict[tuple[str, str], tuple[list[int], list[int], list[int]]] = {}
    due: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    names: dict[str, str] = {}
    for step, role, name, waits, works, totals, *counts in conn.execute(grouped):
        key = (step, _role(role))
        names[step] = max(names.get(step, name), name)
        if waits:
            spent[key] = (_ints(waits), _ints(works), _ints(totals))
        if counts[0]:
            with_due, breached, still_open, escalated = (int(c or 0) for c in counts)
            due[key] = (with_due, breached, still_open, escalated)
    surveyed = select(_joined(conn, sql_cast(TASK.c.instance_id, Text))).where(
        TASK.c.bpmn_id == paths.survey_step, _in(TASK.c.instance_id, cohort)
    )
    joined = conn.execute(surveyed).scalar()
    asked = set(_ints(joined)) if joined else set()
    failed: dict[str, int] = {}
    incidents = (
        select(TASK.c.bpmn_id, func.max(TASK.c.name), func.count())
        .where(
            TASK.c.state == "FAILED",
            true() if cohort is None else TASK.c.instance_id.in_(cohort),
        )
        .group_by(TASK.c.bpmn_id)
    )
    for step, name, n in conn.execute(incidents):
        failed[step] = int(n)
        names.setdefault(step, name)
    return _Tasks(spent, due, names, failed, asked)


def _ints(joined: str) -> list[int]:
    """The whole numbers of a comma-separated text (parsed in C, not one by one)."""
    return list(map(int, joined.split(",")))


def _times(tasks: _Tasks) -> tuple[tuple[StepTime, ...], tuple[RoleTime, ...]]:
    """Waiting, working and total time of people's completed steps, per step and role
    and per role."""
    by_role: dict[str, tuple[list[int], list[int], list[int]]] = defaultdict(lambda: ([], [], []))
    for (_, role), lists in tasks.spent.items():
        for mine, theirs in zip(by_role[role], lists, strict=True):
            mine.extend(theirs)
    steps = tuple(
        StepTime(step, tasks.names.get(step, step), role, *(durations(v) for v in lists))
        for (step, role), lists in sorted(tasks.spent.items())
    )
    roles = tuple(
        RoleTime(role, *(durations(v) for v in lists)) for role, lists in sorted(by_role.items())
    )
    return steps, roles


def _deadlines(tasks: _Tasks, now: datetime, returns: _Returns) -> Deadlines:
    per_role: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (_, role), counts in tasks.due.items():
        for i, n in enumerate(counts):
            per_role[role][i] += n
    steps = [
        StepDeadlines(step, tasks.names.get(step, step), role, *counts)
        for (step, role), counts in sorted(tasks.due.items())
    ]
    roles = [RoleDeadlines(role, *counts) for role, counts in sorted(per_role.items())]
    paid_late, unpaid = [], []
    due = 0
    today = now.astimezone(UTC).date()
    values = returns.values
    for rma, status, deadline_value, paid_value in zip(
        returns.rmas, returns.status, values["refund_deadline"], values["refunded_at"], strict=True
    ):
        if deadline_value is None:
            continue
        deadline = _day(deadline_value)
        if deadline is None:
            continue
        due += 1
        paid = _moment(paid_value)
        if paid is not None and paid.date() > deadline:
            paid_late.append(LateRefund(rma, deadline, paid))
        elif paid is None and status == "running" and today > deadline:
            unpaid.append(LateRefund(rma, deadline, None))
    return Deadlines(
        tuple(steps),
        tuple(roles),
        Rate(sum(s.breached for s in steps), sum(s.with_due for s in steps)),
        sum(s.escalated for s in steps),
        due,
        tuple(sorted(paid_late, key=lambda r: r.rma)),
        tuple(sorted(unpaid, key=lambda r: r.rma)),
    )


def _role(value: Any) -> str:
    """A role or step as text; NONE for none."""
    return NONE if value is None else str(value)


def _day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Calls(NamedTuple):
    """Handler attempts per step: [calls, failed, open incidents]; the steps' names;
    the instances with a failed attempt."""

    per_step: dict[str, list[int]]
    names: dict[str, str]
    failing: set[int]


def _handler_calls(conn: Connection, cohort: Select[tuple[int]] | None) -> _Calls:
    failed_kind = EVENT.c.kind == "handler_failed"
    calls: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    # Read from the index ix_event_kind_step alone, in its order (kind, step): no sort.
    query = (
        select(EVENT.c.kind, EVENT.c.bpmn_id, func.count())
        .where(EVENT.c.kind.in_(HANDLER_EVENTS), _in(EVENT.c.instance_id, cohort))
        .group_by(EVENT.c.kind, EVENT.c.bpmn_id)
    )
    for kind, step, n in conn.execute(query):
        counts = calls.setdefault(_role(step), [0, 0, 0])
        counts[0] += int(n)
        if kind == "handler_failed":
            counts[1] += int(n)
    failing = set()
    failures = select(EVENT.c.instance_id, EVENT.c.bpmn_id, EVENT.c.task_name).where(
        failed_kind, _in(EVENT.c.instance_id, cohort)
    )
    for instance_id, step, name in conn.execute(failures):
        failing.add(int(instance_id))
        names[_role(step)] = max(names.get(_role(step), ""), str(name or _role(step)))
    return _Calls(calls, names, failing)


def _quality(found: _Calls, tasks: _Tasks, returns: _Returns) -> Quality:
    calls = {step: list(counts) for step, counts in found.per_step.items()}
    names = dict(found.names)
    failing = found.failing
    for step, n in tasks.failed.items():
        calls.setdefault(step, [0, 0, 0])[2] += n
        names.setdefault(step, tasks.names.get(step, step))
    return Quality(
        inspections=_counts(_given(returns, "inspection")),
        disputes=_counts(_given(returns, "dispute")),
        error_rate=Rate(sum(c[1] for c in calls.values()), sum(c[0] for c in calls.values())),
        open_incidents=sum(c[2] for c in calls.values()),
        returns_with_failures=len(failing),
        steps=tuple(
            StepErrors(step, names[step], *calls[step])
            for step in sorted(calls)
            if calls[step][1] or calls[step][2]
        ),
    )


def _counts(values: Iterable[str]) -> tuple[Count, ...]:
    return tuple(Count(k, n) for k, n in sorted(Counter(values).items()))


def _given(returns: _Returns, name: str) -> list[str]:
    """The field as text, for the returns where it is set (not empty, zero or false)."""
    return [t for v, t in zip(returns.values[name], returns.text(name), strict=True) if v]


def _score(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _mean(scores: Sequence[int]) -> Decimal | None:
    if not scores:
        return None
    return (Decimal(sum(scores)) / Decimal(len(scores))).quantize(Decimal("0.01"))


def _customers(tasks: _Tasks, returns: _Returns, dimension: str) -> Customers:
    asked = tasks.asked
    scores: list[int] = []
    # group -> [asked, answered], and the scores given
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    given: dict[str, list[int]] = defaultdict(list)
    for number, value, group in zip(
        returns.ids, returns.values["score"], returns.text(dimension), strict=True
    ):
        score = None if value is None else _score(value)
        if score is not None:  # an answer counts as asked, whatever the tasks say
            scores.append(score)
            given[group].append(score)
        elif number not in asked:
            continue
        groups[group][0] += 1
    by_group = [
        GroupScore(name, Rate(len(given[name]), n), _mean(given[name]))
        for name, (n, _) in sorted(groups.items())
    ]
    return Customers(
        responses=Rate(len(scores), sum(n for n, _ in groups.values())),
        scores=_counts(str(s) for s in scores),
        mean=_mean(scores),
        by_group=tuple(by_group),
    )


def _money(returns: _Returns) -> tuple[MoneyLine, ...]:
    totals: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    values = returns.values
    for paid, paid_in, refund_in, fee, shipping in zip(
        returns.decimal("refunded_amount"),
        values["refunded_currency"],
        values["refund_currency"],
        returns.decimal("restocking_fee"),
        returns.decimal("shipping_refunded"),
        strict=True,
    ):
        if paid is None:
            continue
        if paid_in:
            totals["refunded", str(paid_in)].append(paid)
        currency = refund_in or paid_in  # the refund's breakdown counts once it is paid
        if currency:
            if fee:
                totals["restocking_fees", str(currency)].append(fee)
            if shipping:
                totals["shipping_subsidies", str(currency)].append(shipping)
    for kind, amount, currency in (
        ("insurance_recovered", "recovered_amount", "recovered_currency"),
        ("charged", "charged_amount", "charged_currency"),
    ):
        for value, unit in zip(returns.decimal(amount), values[currency], strict=True):
            if value is not None and unit:
                totals[kind, str(unit)].append(value)
    order = {kind: i for i, kind in enumerate(MONEY_KINDS)}
    return tuple(
        MoneyLine(kind, Amount(sum(amounts, Decimal(0)), currency), len(amounts))
        for (kind, currency), amounts in sorted(
            totals.items(), key=lambda item: (order[item[0][0]], item[0][1])
        )
    )


def _reasons(returns: _Returns, sold: Mapping[str, Counter[str]]) -> Reasons:
    categories = returns.text("category")
    counts = Counter(zip(returns.text("reason"), categories, returns.text("channel"), strict=True))
    flagged = []
    if sold:
        per_category = Counter(categories)
        known = {c: n for c, n in per_category.items() if sold["category"].get(c)}
        overall = Rate(sum(known.values()), sum(sold["category"].values()))
        for category, n in sorted(known.items()):
            rate = Rate(n, sold["category"][category])
            if (
                n >= FLAG_MIN_RETURNS
                and n * overall.whole > FLAG_FACTOR * overall.part * rate.whole
            ):
                flagged.append(Flag(category, rate, overall))
    return Reasons(
        tuple(ReasonCount(*key, n) for key, n in sorted(counts.items())),
        tuple(flagged),
    )


def seconds_text(seconds: int | None) -> str:
    """A duration for people: 3d 4h, 2h 5m, 40s."""
    if seconds is None:
        return NONE
    left = timedelta(seconds=seconds)
    days, rest = left.days, left.seconds
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {rest % 60}s"
    return f"{rest}s"


__all__ = [
    "DIMENSIONS",
    "Indicators",
    "ReturnPaths",
    "Row",
    "compute",
    "durations",
    "seconds_text",
]
