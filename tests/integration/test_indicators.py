"""The indicators of `artreturns report`, on SQLite and PostgreSQL.

Hand-checked cases run instances through the real engine with a fixed clock, so every
time is known. Generated histories (hypothesis) are written straight into the instance,
task and event tables and the indicators are compared with a brute-force computation
in Python over the same rows, written from the definitions in docs/monitoring.md.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update
from sqlalchemy import text as sql
from support import T0, Recorder, clock_of, fixture

from engine import Engine
from engine.canonical import dump_data, tag_data
from engine.indicators import (
    BOTTLENECKS,
    DECLINED,
    EVENT,
    FLAG_FACTOR,
    FLAG_MIN_RETURNS,
    HANDLER_EVENTS,
    INSTANCE,
    NONE,
    OPEN_STATES,
    PEOPLE_KINDS,
    REPORT_PATHS,
    TASK,
    Durations,
    Indicators,
    Rate,
    ReturnPaths,
    compute,
    durations,
    report_data,
)
from handlers.store.tables import artworks, orders

ACTOR = "tester"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def report(engine: Engine, **kwargs: Any) -> Indicators:
    paths = kwargs.pop("paths", ReturnPaths(process=None))
    with engine.db.connect() as conn:
        return compute(conn, now=engine.clock.now(), paths=paths, **kwargs)


# -- hand-checked, through the engine -------------------------------------------------


def test_times_deadlines_and_escalations_of_a_review_with_a_due_time(engine: Engine) -> None:
    """Three reviews due 2 days after they open: one claimed after an hour and done two
    hours later, one never claimed, done after 3 days (late, escalated), one still open
    past its due time (escalated)."""
    engine.deploy(fixture("escalate_review.bpmn"), actor="owner")
    clock = clock_of(engine)
    engine.start("escalate_review", {}, business_key="E-1", actor=ACTOR)
    clock.set(T0 + HOUR)
    engine.claim("E-1:review", actor="ann")
    engine.start("escalate_review", {}, business_key="E-2", actor=ACTOR)
    clock.set(T0 + 2 * HOUR)
    engine.start("escalate_review", {}, business_key="E-3", actor=ACTOR)
    clock.set(T0 + 3 * HOUR)
    engine.complete("E-1:review", {}, actor="ann")
    clock.set(T0 + 2 * DAY + 3 * HOUR)
    assert len(engine.run_due(actor="timer")) == 2  # E-2 and E-3 escalate
    clock.set(T0 + 3 * DAY + HOUR)
    engine.complete("E-2:review", {}, actor="bob")
    clock.set(T0 + 5 * DAY)

    found = report(engine)
    v = found.volume
    assert (v.opened, v.closed, v.declined, v.in_flight) == (3, 2, 0, 1)
    # E-1 took 3 hours, E-2 3 days: nearest rank, the 1st of 2 and the 2nd of 2.
    assert found.time.end_to_end == Durations(2, 10800 + 259200, 10800, 259200)
    [step] = found.time.steps
    assert (step.step, step.name, step.role) == ("review", "Review it", "clerk")
    assert step.waiting == Durations(2, 3600 + 259200, 3600, 259200)
    assert step.working == Durations(2, 7200, 0, 7200)
    assert step.total == Durations(2, 10800 + 259200, 10800, 259200)
    [role] = found.time.roles
    assert (role.role, role.total) == ("clerk", step.total)
    assert found.time.bottlenecks == ("review",)
    [late] = found.deadlines.steps
    assert (late.with_due, late.breached, late.open, late.escalated) == (3, 2, 1, 2)
    assert found.deadlines.breached == Rate(2, 3)
    assert found.deadlines.escalated == 2
    [late_role] = found.deadlines.roles
    assert (late_role.role, late_role.breached) == ("clerk", 2)

    # The window is on the start: from 30 minutes on, E-1 is left out.
    later = report(engine, since=T0 + HOUR / 2)
    assert (later.volume.opened, later.volume.closed, later.volume.in_flight) == (2, 1, 1)
    assert later.time.end_to_end == Durations(1, 259200, 259200, 259200)
    assert later.deadlines.breached == Rate(2, 2)
    before = report(engine, until=T0 + HOUR)
    assert before.volume.opened == 1
    assert before.deadlines.breached == Rate(0, 1)


def test_handler_failures_retries_and_incidents(engine: Engine, recorder: Recorder) -> None:
    """P-1: the right call fails once and is retried; P-2: it fails and stays failed."""
    engine.deploy(fixture("parallel_pair.bpmn"), actor="owner")
    for key in ("P-1", "P-2"):
        engine.start("parallel_pair", {}, business_key=key, actor=ACTOR)
        engine.complete(f"{key}:left", {}, actor=ACTOR)
        recorder.failures["test.echo"] = RuntimeError("carrier down")
        engine.complete(f"{key}:right", {}, actor=ACTOR)
        recorder.failures.clear()
    engine.retry("P-1", actor=ACTOR)

    q = report(engine).quality
    assert q.error_rate == Rate(2, 5)  # left 2 results; right 2 failures, 1 result
    assert q.open_incidents == 1
    assert q.returns_with_failures == 2
    [right] = q.steps
    assert (right.step, right.name, right.calls, right.failed, right.open_incidents) == (
        "right_call",
        "Right call",
        3,
        2,
        1,
    )
    assert report(engine).volume.in_flight == 1


# -- generated histories ----------------------------------------------------------------

STEPS = ("approve_return", "inspect_work", "wait_confirmation", "confirm_refund")
ROLES = ("customer_service", "finance", None)
CATEGORIES = ("painting", "print", "antique", None)


@dataclass
class GenTask:
    bpmn_id: str
    kind: str
    role: str | None
    state: str
    created: int
    claimed: int | None
    ended: int | None
    due: int | None
    escalated_to: str | None


@dataclass
class GenReturn:
    process: str
    started: int
    status: str
    took: int
    data: dict[str, Any] | None
    tasks: list[GenTask] = field(default_factory=list)
    events: list[tuple[str, str | None]] = field(default_factory=list)


def _money(amount: int) -> str:
    return f"{Decimal(amount) / 100:.2f}"


@st.composite
def tasks(draw: st.DrawFn, started: int) -> GenTask:
    created = started + draw(st.integers(0, 5 * 86400))
    state = draw(st.sampled_from(["COMPLETED", "CANCELLED", "READY", "WAITING", "FAILED"]))
    ended = (
        created + draw(st.integers(0, 4 * 86400)) if state in ("COMPLETED", "CANCELLED") else None
    )
    claimed = None
    if draw(st.booleans()):
        claimed = created + draw(st.integers(0, (ended - created) if ended is not None else 86400))
    due = created + draw(st.integers(0, 3 * 86400)) if draw(st.booleans()) else None
    return GenTask(
        bpmn_id=draw(st.sampled_from(STEPS)),
        kind=draw(st.sampled_from(["user", "user", "manual", "service", "timer", "message"])),
        role=draw(st.sampled_from(ROLES)),
        state=state,
        created=created,
        claimed=claimed,
        ended=ended,
        due=due,
        escalated_to=draw(st.sampled_from([None, None, "finance_supervisor"])),
    )


@st.composite
def return_data(draw: st.DrawFn, started: int) -> dict[str, Any] | None:
    if not draw(st.integers(0, 9)):
        return None
    currency = draw(st.sampled_from(["CNY", "EUR"]))
    amounts = st.integers(0, 500000)
    deadline = (T0 + timedelta(seconds=started) + draw(st.integers(0, 20)) * DAY).date()
    data: dict[str, Any] = {
        "request": {"reason": draw(st.sampled_from(["no_reason", "defective", ""]))},
        "order": {"channel": draw(st.sampled_from(["online_shop", "store"]))},
        "rma_closed": draw(
            st.sampled_from(
                [None, *({"rma_status": s} for s in ("closed", "declined", "rejected", "lapsed"))]
            )
        ),
        "dispute_outcome": draw(st.sampled_from([None, "refund", "reject"])),
        "inspection": draw(
            st.sampled_from([None, {"outcome": "accepted"}, {"outcome": "mismatch"}])
        ),
        "confirmation": draw(st.sampled_from([None, {}, *({"score": s} for s in range(1, 6))])),
        "amount": Decimal("12.50"),  # a tagged value the indicators do not read
    }
    category = draw(st.sampled_from(CATEGORIES))
    if category is not None:
        data["artwork"] = {"category": category, "artist": draw(st.sampled_from(["Lin", "Ito"]))}
    if draw(st.booleans()):
        data["refund"] = {
            "amount": {"amount": _money(draw(amounts)), "currency": currency},
            "deadline": deadline.isoformat(),
            "breakdown": {
                "restocking_fee": {"amount": _money(draw(amounts)), "currency": currency},
                "shipping_refunded": {"amount": _money(draw(amounts)), "currency": currency},
            },
        }
    if draw(st.booleans()):
        paid = T0 + timedelta(seconds=started + draw(st.integers(0, 20 * 86400)))
        data["refunded"] = {
            "amount": {"amount": _money(draw(amounts)), "currency": currency},
            "paid_at": paid.isoformat(),
        }
    if draw(st.booleans()):
        data["insurance_claim"] = {
            "recovered": draw(st.sampled_from([None, {"amount": "19.50", "currency": "EUR"}]))
        }
    if draw(st.booleans()):
        data["charged"] = {"amount": {"amount": _money(draw(amounts)), "currency": currency}}
    return data


@st.composite
def returns(draw: st.DrawFn) -> GenReturn:
    started = draw(st.integers(0, 10 * 86400))
    return GenReturn(
        process=draw(st.sampled_from(["return_request", "return_request", "other"])),
        started=started,
        status=draw(st.sampled_from(["running", "completed", "completed", "cancelled"])),
        took=draw(st.integers(0, 30 * 86400)),
        data=draw(return_data(started)),
        tasks=draw(st.lists(tasks(started), max_size=4)),
        events=draw(
            st.lists(
                st.tuples(
                    st.sampled_from([*HANDLER_EVENTS, "handler_failed", "task_completed"]),
                    st.sampled_from([None, "inspect_work", "confirm_refund"]),
                ),
                max_size=4,
            )
        ),
    )


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "returns": draw(st.lists(returns(), max_size=10)),
        "sold": draw(
            st.lists(st.tuples(st.sampled_from(CATEGORIES[:3]), st.sampled_from(["Lin", "Ito"])))
        ),
        "since": draw(st.none() | st.integers(0, 10 * 86400)),
        "until": draw(st.none() | st.integers(0, 12 * 86400)),
        "now": draw(st.integers(10 * 86400, 40 * 86400)),
        "by": draw(st.sampled_from([None, "category", "reason", "channel", "role", "step"])),
    }


def at(seconds: int | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


def write(engine: Engine, history: dict[str, Any]) -> None:
    with engine.db.connect() as conn:
        for table in (EVENT, TASK, INSTANCE, artworks, orders):
            conn.execute(delete(table))
        for number, r in enumerate(history["returns"], 1):
            ended = r.started + r.took if r.status != "running" else None
            conn.execute(
                insert(INSTANCE).values(
                    id=number,
                    uid=str(uuid.uuid4()),
                    business_key=f"RMA-{number:03d}",
                    process_id=r.process,
                    definition_id=1,
                    process_version=1,
                    status=r.status,
                    state="{}",
                    serializer_version="x",
                    revision=1,
                    started_at=at(r.started),
                    started_by=ACTOR,
                    updated_at=at(r.started),
                    ended_at=at(ended),
                    incident_count=0,
                    event_count=len(r.events),
                    head_hash="0" * 64,
                    data=None if r.data is None else dump_data(r.data),
                    # Every other return has its report fields kept, as a save keeps
                    # them; the rest were saved before they were (the report reads
                    # their data): both ways must give the brute force's answer.
                    report_data=None if number % 2 else report_data(tag_data(r.data)),
                )
            )
            for t in r.tasks:
                conn.execute(
                    insert(TASK).values(
                        id=str(uuid.uuid4()),
                        instance_id=number,
                        bpmn_id=t.bpmn_id,
                        name=f"Step {t.bpmn_id}",
                        kind=t.kind,
                        role=t.role,
                        state=t.state,
                        due_at=at(t.due),
                        escalated_to=t.escalated_to,
                        created_at=at(t.created),
                        ended_at=at(t.ended),
                        claimed_at=at(t.claimed),
                        claimed_by=None if t.claimed is None else "ann",
                        attempts=0,
                    )
                )
            for seq, (kind, bpmn_id) in enumerate(r.events, 1):
                conn.execute(
                    insert(EVENT).values(
                        instance_id=number,
                        seq=seq,
                        at=at(r.started),
                        actor=ACTOR,
                        kind=kind,
                        bpmn_id=bpmn_id,
                        task_name=None if bpmn_id is None else f"Step {bpmn_id}",
                        data="{}",
                        process_id=r.process,
                        process_version=1,
                        state_digest="0" * 64,
                        prev_hash="0" * 64,
                        hash="0" * 64,
                    )
                )
        if history["sold"]:
            conn.execute(
                insert(orders).values(
                    order_number="SO-1",
                    channel="store",
                    jurisdiction="CN",
                    currency="CNY",
                    sold_at=date(2026, 10, 1),
                    payment_method="card",
                    payer="x",
                    shipping_charge_minor=0,
                    customer_name="x",
                    customer_email="x@example.com",
                    customer_locale="en",
                    customer_address="x",
                    imported_at=T0,
                )
            )
        for n, (category, artist) in enumerate(history["sold"]):
            conn.execute(
                insert(artworks).values(
                    order_number="SO-1",
                    artwork_id=f"W-{n}",
                    title="x",
                    artist=artist,
                    category=category,
                    price_minor=100,
                    flags={},
                    condition={},
                )
            )


def get(data: dict[str, Any] | None, path: str) -> Any:
    value: Any = data
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def text(data: dict[str, Any] | None, path: str) -> str:
    value = get(data, path)
    return NONE if value is None or value == "" else str(value)


def expected(history: dict[str, Any]) -> dict[str, Any]:
    """Every indicator compared, computed the slow way from the generated rows."""
    paths = ReturnPaths()
    since, until, now = at(history["since"]), at(history["until"]), at(history["now"])
    assert now is not None
    numbered = list(enumerate(history["returns"], 1))
    cohort = [
        (n, r)
        for n, r in numbered
        if r.process == "return_request"
        and (since is None or at(r.started) >= since)  # type: ignore[operator]
        and (until is None or at(r.started) < until)  # type: ignore[operator]
    ]
    dim = history["by"] if history["by"] in ("category", "reason", "channel") else "category"
    dim_path = getattr(paths, dim)
    ticket = {n: text(r.data, paths.ticket) for n, r in cohort}

    def tally(chosen: list[tuple[int, GenReturn]]) -> tuple[int, ...]:
        closed = [n for n, r in chosen if r.status != "running"]
        return (
            len(chosen),
            len(closed),
            sum(1 for n in closed if ticket[n] in DECLINED),
            sum(1 for _, r in chosen if r.status == "running"),
        )

    def took(chosen: list[tuple[int, GenReturn]]) -> Durations:
        return durations(r.took for _, r in chosen if r.status == "completed")

    groups: dict[str, list[tuple[int, GenReturn]]] = defaultdict(list)
    for n, r in cohort:
        groups[text(r.data, dim_path)].append((n, r))
    out: dict[str, Any] = {
        "volume": (*tally(cohort), took(cohort)),
        "lapsed": sum(1 for n, r in cohort if r.status != "running" and ticket[n] == "lapsed"),
        "by_group": [(g, *tally(c), took(c)) for g, c in sorted(groups.items())],
    }
    sold = {d: Counter(s[i] for s in history["sold"]) for i, d in enumerate(("category", "artist"))}
    rates = []
    for d in ("category", "artist") if history["sold"] else ():
        returned = Counter(text(r.data, getattr(paths, d)) for _, r in cohort)
        rates += [(d, g, Rate(returned[g], sold[d][g])) for g in sorted(sold[d])]
    out["rates"] = rates

    # Times of people's steps, and deadlines.
    ids = {n for n, _ in cohort}
    all_tasks = [(n, t) for n, r in cohort for t in r.tasks]
    done = [
        t
        for _, t in all_tasks
        if t.kind in PEOPLE_KINDS and t.state == "COMPLETED" and t.ended is not None
    ]
    measured: dict[tuple[str, ...], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for t in done:
        assert t.ended is not None
        role = t.role or NONE
        waited = (t.claimed if t.claimed is not None else t.ended) - t.created
        worked = t.ended - t.claimed if t.claimed is not None else 0
        for key in ((t.bpmn_id, role), (role,)):
            for name, value in (("w", waited), ("k", worked), ("t", t.ended - t.created)):
                measured[key][name].append(value)
    out["steps"] = [
        (k, durations(m["w"]), durations(m["k"]), durations(m["t"]))
        for k, m in sorted(measured.items())
        if len(k) == 2
    ]
    out["roles"] = [
        (k[0], durations(m["w"]), durations(m["k"]), durations(m["t"]))
        for k, m in sorted(measured.items())
        if len(k) == 1
    ]
    ranked = sorted(
        ((step_role[0], d[2].median) for step_role, *d in out["steps"]),
        key=lambda s: (-s[1], s[0]),
    )
    out["bottlenecks"] = tuple(step for step, _ in ranked[:BOTTLENECKS])
    late: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for _, t in all_tasks:
        if t.kind not in PEOPLE_KINDS or t.due is None or t.state == "CANCELLED":
            continue
        still_open = t.ended is None and t.state in OPEN_STATES and t.due < history["now"]
        missed = (t.ended is not None and t.ended > t.due) or still_open
        for key in ((t.bpmn_id, t.role or NONE), (t.role or NONE,)):
            counts = late[key]
            counts[0] += 1
            counts[1] += missed
            counts[2] += still_open
            counts[3] += t.escalated_to is not None
    out["late_steps"] = [(*k, *v) for k, v in sorted(late.items()) if len(k) == 2]
    out["late_roles"] = [(*k, *v) for k, v in sorted(late.items()) if len(k) == 1]
    paid_late, unpaid = [], []
    due = 0
    for n, r in cohort:
        deadline = get(r.data, paths.refund_deadline)
        if deadline is None:
            continue
        due += 1
        paid = get(r.data, paths.refunded_at)
        if paid is not None and datetime.fromisoformat(paid).date() > date.fromisoformat(deadline):
            paid_late.append(f"RMA-{n:03d}")
        elif paid is None and r.status == "running" and now.date() > date.fromisoformat(deadline):
            unpaid.append(f"RMA-{n:03d}")
    out["refunds"] = (due, paid_late, unpaid)

    # Quality.
    calls: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, r in cohort:
        for kind, bpmn_id in r.events:
            if kind in HANDLER_EVENTS:
                calls[bpmn_id or NONE][0] += 1
                calls[bpmn_id or NONE][1] += kind == "handler_failed"
    for _, t in all_tasks:
        if t.state == "FAILED":
            calls[t.bpmn_id][2] += 1
    out["quality"] = (
        Rate(sum(c[1] for c in calls.values()), sum(c[0] for c in calls.values())),
        sum(c[2] for c in calls.values()),
        sum(1 for _, r in cohort if any(k == "handler_failed" for k, _ in r.events)),
        [(s, *calls[s]) for s in sorted(calls) if calls[s][1] or calls[s][2]],
        sorted(
            Counter(
                text(r.data, paths.inspection) for _, r in cohort if get(r.data, paths.inspection)
            ).items()
        ),
        sorted(
            Counter(
                text(r.data, paths.dispute) for _, r in cohort if get(r.data, paths.dispute)
            ).items()
        ),
    )

    # Customers.
    score = {n: get(r.data, paths.score) for n, r in cohort}
    asked = {n for n, t in all_tasks if t.bpmn_id == paths.survey_step} | {
        n for n in ids if score[n] is not None
    }
    scores = [score[n] for n in ids if score[n] is not None]
    by_group = defaultdict(list)
    for n, r in cohort:
        if n in asked:
            by_group[text(r.data, dim_path)].append(score[n])

    def mean(values: list[int]) -> Decimal | None:
        return (Decimal(sum(values)) / len(values)).quantize(Decimal("0.01")) if values else None

    out["customers"] = (
        Rate(len(scores), len(asked)),
        sorted(Counter(str(s) for s in scores).items()),
        mean(scores),
        [
            (
                g,
                Rate(sum(1 for s in c if s is not None), len(c)),
                mean([s for s in c if s is not None]),
            )
            for g, c in sorted(by_group.items())
        ],
    )

    # Money.
    money: dict[tuple[str, str], list[Any]] = {}

    def add(kind: str, amount: Any, currency: Any) -> None:
        if amount is None or not currency:
            return
        slot = money.setdefault((kind, currency), [Decimal(0), 0])
        slot[0] += Decimal(amount)
        slot[1] += 1

    for _, r in cohort:
        paid = get(r.data, paths.refunded_amount)
        add("refunded", paid, get(r.data, paths.refunded_currency))
        if paid is not None:
            currency = get(r.data, paths.refund_currency) or get(r.data, paths.refunded_currency)
            for kind, path in (
                ("restocking_fees", paths.restocking_fee),
                ("shipping_subsidies", paths.shipping_refunded),
            ):
                value = get(r.data, path)
                add(kind, value if value is not None and Decimal(value) else None, currency)
        add(
            "insurance_recovered",
            get(r.data, paths.recovered_amount),
            get(r.data, paths.recovered_currency),
        )
        add("charged", get(r.data, paths.charged_amount), get(r.data, paths.charged_currency))
    out["money"] = {(k, c): (total, n) for (k, c), (total, n) in money.items()}

    # Reasons and flags.
    out["reasons"] = sorted(
        Counter(
            (text(r.data, paths.reason), text(r.data, paths.category), text(r.data, paths.channel))
            for _, r in cohort
        ).items()
    )
    flagged = []
    if history["sold"]:
        per = Counter(text(r.data, paths.category) for _, r in cohort)
        known = {c: k for c, k in per.items() if sold["category"][c]}
        total_sold = sum(sold["category"].values())
        overall = sum(known.values()) / total_sold
        for c, k in sorted(known.items()):
            if (
                k >= FLAG_MIN_RETURNS
                and Decimal(k) / sold["category"][c]
                > FLAG_FACTOR * Decimal(sum(known.values())) / total_sold
            ):
                flagged.append(c)
        del overall
    out["flagged"] = flagged
    return out


def actual(found: Indicators) -> dict[str, Any]:
    v, t, d, q, c = found.volume, found.time, found.deadlines, found.quality, found.customers
    return {
        "volume": (v.opened, v.closed, v.declined, v.in_flight, t.end_to_end),
        "lapsed": v.lapsed,
        "by_group": [
            (g.group, g.opened, g.closed, g.declined, g.in_flight, g.end_to_end) for g in v.by_group
        ],
        "rates": [(r.dimension, r.group, r.rate) for r in v.return_rates],
        "steps": [((s.step, s.role), s.waiting, s.working, s.total) for s in t.steps],
        "roles": [(r.role, r.waiting, r.working, r.total) for r in t.roles],
        "bottlenecks": t.bottlenecks,
        "late_steps": [
            (s.step, s.role, s.with_due, s.breached, s.open, s.escalated) for s in d.steps
        ],
        "late_roles": [(r.role, r.with_due, r.breached, r.open, r.escalated) for r in d.roles],
        "refunds": (
            d.refunds_due,
            [r.rma for r in d.paid_late],
            [r.rma for r in d.unpaid_overdue],
        ),
        "quality": (
            q.error_rate,
            q.open_incidents,
            q.returns_with_failures,
            [(s.step, s.calls, s.failed, s.open_incidents) for s in q.steps],
            [(x.key, x.count) for x in q.inspections],
            [(x.key, x.count) for x in q.disputes],
        ),
        "customers": (
            c.responses,
            [(x.key, x.count) for x in c.scores],
            c.mean,
            [(g.group, g.responses, g.mean) for g in c.by_group],
        ),
        "money": {(m.kind, m.amount.currency): (m.amount.amount, m.count) for m in found.money},
        "reasons": [((r.reason, r.category, r.channel), r.count) for r in found.reasons.counts],
        "flagged": [f.category for f in found.reasons.flagged],
    }


@pytest.fixture
def blank(engine: Engine) -> Engine:
    """An engine whose database has one definition row for generated instances."""
    from engine.persistence.records import DefinitionRecord

    with engine.db.connect() as conn:
        conn.execute(
            insert(DefinitionRecord.__table__).values(
                id=1,
                process_id="return_request",
                version=1,
                name="x",
                content_hash="0" * 64,
                spec_json="{}",
                serializer_version="x",
                files=[],
                elements=[],
                lanes=[],
                deployed_at=T0,
                deployed_by=ACTOR,
            )
        )
    return engine


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_generated_histories_match_a_brute_force_count(
    blank: Engine, history: dict[str, Any]
) -> None:
    write(blank, history)

    def report_of(parallel: bool) -> Indicators:
        with blank.db.connect() as conn:
            return compute(
                conn,
                now=at(history["now"]) or T0,
                since=at(history["since"]),
                until=at(history["until"]),
                by=history["by"],
                parallel=parallel,
            )

    found = report_of(parallel=True)
    got, want = actual(found), expected(history)
    for key in want:
        assert got[key] == want[key], key
    # Everything on one connection: the same answer.
    assert report_of(parallel=False) == found
    # The other forms carry the same numbers.
    data = found.as_data()
    assert data["volume"]["opened"] == found.volume.opened
    rows = {(r.section, r.indicator, r.group, r.currency): r.value for r in found.rows()}
    assert rows[("volume", "opened", "", "")] == str(found.volume.opened)
    for m in found.money:
        assert rows[("money", m.kind, "", m.amount.currency)] == str(m.amount.amount)


def test_a_refund_paid_after_its_deadline_is_an_alarm(blank: Engine) -> None:
    """Hand-checked rows: three returns, one refund paid a day late, one unpaid and past
    its deadline, one paid on the day; money per currency, exactly."""

    def refund(deadline: str, paid: str | None, amount: str, currency: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "refund": {
                "deadline": deadline,
                "amount": {"amount": amount, "currency": currency},
                "breakdown": {"restocking_fee": {"amount": "0.10", "currency": currency}},
            },
            "artwork": {"category": "print", "artist": "Lin"},
            "request": {"reason": "no_reason"},
            "order": {"channel": "store"},
        }
        if paid is not None:
            data["refunded"] = {"amount": {"amount": amount, "currency": currency}, "paid_at": paid}
        return data

    history = {
        "returns": [
            GenReturn(
                "return_request",
                0,
                "completed",
                86400,
                refund("2026-11-05", "2026-11-06T10:00:00+00:00", "0.10", "EUR"),
            ),
            GenReturn("return_request", 0, "running", 0, refund("2026-11-05", None, "5.00", "EUR")),
            GenReturn(
                "return_request",
                0,
                "completed",
                86400,
                refund("2026-11-05", "2026-11-05T23:59:00+00:00", "0.20", "EUR"),
            ),
        ],
        "sold": [],
    }
    write(blank, history)
    with blank.db.connect() as conn:
        found = compute(conn, now=datetime(2026, 11, 10, tzinfo=UTC))
    d = found.deadlines
    assert d.refunds_due == 3
    assert [(r.rma, r.deadline) for r in d.paid_late] == [("RMA-001", date(2026, 11, 5))]
    assert [r.rma for r in d.unpaid_overdue] == ["RMA-002"]
    assert found.alarms == [
        "1 refund(s) paid after their legal deadline: RMA-001",
        "1 refund(s) not paid and past their legal deadline: RMA-002",
    ]
    money = {(m.kind, m.amount.currency): (m.amount.amount, m.count) for m in found.money}
    # 0.1 + 0.2 is 0.30 exactly (a float would say 0.30000000000000004).
    assert money == {
        ("refunded", "EUR"): (Decimal("0.30"), 2),
        ("restocking_fees", "EUR"): (Decimal("0.20"), 2),
    }
    assert found.as_data()["money"][0]["amount"] == {"amount": "0.30", "currency": "EUR"}


def test_a_category_returned_far_more_than_the_rest_is_flagged(blank: Engine) -> None:
    """60 works sold, 20 per category; 6 prints, 1 painting and no antique returned:
    7/60 overall, prints 6/20 = 0.30 > 2 x 0.1167. Paintings are not flagged, and
    neither would prints be with 4 returns (fewer than FLAG_MIN_RETURNS)."""

    def work(category: str) -> dict[str, Any]:
        return {"artwork": {"category": category, "artist": "Lin"}}

    sold = [(c, "Lin") for c in ("print", "painting", "antique") for _ in range(20)]
    made = [GenReturn("return_request", 0, "completed", 60, work("print")) for _ in range(6)]
    made.append(GenReturn("return_request", 0, "completed", 60, work("painting")))
    write(blank, {"returns": made, "sold": sold})
    with blank.db.connect() as conn:
        found = compute(conn, now=T0 + DAY)
    [flag] = found.reasons.flagged
    assert (flag.category, flag.rate, flag.overall) == ("print", Rate(6, 20), Rate(7, 60))
    rates = {(r.dimension, r.group): r.rate for r in found.volume.return_rates}
    assert rates[("category", "antique")] == Rate(0, 20)
    assert rates[("artist", "Lin")] == Rate(7, 60)

    write(blank, {"returns": made[2:], "sold": sold})
    with blank.db.connect() as conn:
        assert compute(conn, now=T0 + DAY).reasons.flagged == ()


# -- the report's fields, kept beside the data ------------------------------------------


def test_every_save_keeps_the_fields_the_report_reads(engine: Engine) -> None:
    """Each save writes the data's values at REPORT_PATHS into `instance.report_data`,
    as the stored data holds them; the report gives the same answer from them as from
    the data (read where they are missing), and revision 0012 writes them again from
    the data for instances saved before it."""
    engine.deploy(fixture("escalate_review.bpmn"), actor="owner")
    clock = clock_of(engine)
    engine.start(
        "escalate_review",
        {
            "artwork": {"category": "painting", "artist": "齐白石"},
            "request": {"reason": "damaged"},
            "order": {"channel": ["online"]},  # kept as it is
            "insurance_claim": [{"recovered": {"amount": 1}}],  # a list on the way: none
            "refunded": {"amount": {"amount": Decimal("1.50"), "currency": "CNY"}},
            "dispute_outcome": {"$odd": 1},  # kept tagged, as the data keeps it
        },
        business_key="K-1",
        actor=ACTOR,
    )
    engine.start("escalate_review", {}, business_key="K-2", actor=ACTOR)
    clock.set(T0 + HOUR)
    engine.complete("K-1:review", {"confirmation": {"score": 4}}, actor="ann")

    def kept() -> dict[str, Any]:
        with engine.db.connect() as conn:
            found = conn.execute(select(INSTANCE.c.business_key, INSTANCE.c.report_data))
            return {key: None if kept is None else json.loads(kept) for key, kept in found}

    before = kept()
    assert set(before["K-1"]) == set(REPORT_PATHS) == set(before["K-2"])
    assert {p: v for p, v in before["K-1"].items() if v is not None} == {
        "artwork.category": "painting",
        "artwork.artist": "齐白石",
        "request.reason": "damaged",
        "order.channel": ["online"],
        "refunded.amount.amount": {"$decimal": "1.50"},
        "refunded.amount.currency": "CNY",
        "confirmation.score": 4,
        "dispute_outcome": {"$dict": {"$odd": 1}},
    }
    assert set(before["K-2"].values()) == {None}

    found = report(engine)
    assert found.money[0].amount.amount == Decimal("1.50")
    assert found.customers.mean == 4
    with engine.db.connect() as conn:  # saved before the fields were kept
        conn.execute(update(INSTANCE).values(report_data=None))
    assert report(engine) == found

    with engine.db.connect() as conn:  # revision 0012 again, from before it
        conn.execute(sql("ALTER TABLE instance DROP COLUMN report_data"))
        conn.execute(
            sql("UPDATE alembic_version SET version_num = '0011' WHERE version_num = '0012'")
        )
    before_upgrade, after_upgrade = engine.init()
    assert "0011" in (before_upgrade or "").split()
    assert "0012" in after_upgrade.split()
    assert kept() == before
    assert report(engine) == found
