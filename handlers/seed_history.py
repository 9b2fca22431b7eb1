"""`artreturns bench --seed-history N`: a database of many returns, made fast from real ones.

Running 100,000 returns through the engine would take hours, so the generator runs a
few dozen real ones and copies them. What is real, and what is varied:

- **Real.** A set of template returns is run once, in a temporary SQLite file, through
  the desk and the engine's API (the calls the commands make): the procedure in
  `processes/` deployed, orders imported, each return applied for and taken down one
  path (refunded with the customer's score or without an answer, approval or refund
  escalated after its deadline, accepted with a deduction, declined by the policy at
  intake, rejected by customer service, exchanged, disputed after a mismatch, a failed
  payment retried, cancelled; and, for the returns still in flight, stopped waiting for
  approval, the parcel, the inspector or finance), with people acting under their own
  names at their own times. Every row the seeded database holds for a return is a copy
  of a template's row: the instance (state, data, summary, times, counts), its task
  rows (created, claimed, due, ended, role, completed by, escalations, attempts), its
  events with their data and state digests, and the procedure's own rows (the order and
  its artworks, the RMA number, the ledger, shipments, claims, notices, the customer's
  file with the satisfaction score). Paths, amounts, refunds, restocking fees, tiers,
  policy rules and processing times are therefore the engine's and the handlers' own.
- **Varied.** Each copy gets its own numbers (instance id and uid, task ids, RMA number,
  order number, artwork id, tracking numbers), its own customer, artist and title, and
  its own dates: the whole return is moved by a whole number of days, so that every
  time, date and deadline in it keeps its relation to the others. The event hash chain
  is computed again over the copied events (`engine.history.event_hash`, what
  `history.chain` uses), so `audit verify` holds; the state digests are the template's,
  so `replay` of a copy stops at its first event whose data differs (its dates). Dates
  written out in words inside notices' texts keep the template's dates. Evidence files
  are not copied.

Of the returns asked for, a share (IN_FLIGHT_SHARE) is still in flight, started in the
last days before the end of the history; the others are closed and started over the
HISTORY_DAYS before that. Categories, channels, currencies, reasons and paths are drawn
with fixed weights from a random generator seeded with --seed, so the same seed makes
the same database. Orders that were not returned are added, so that return rates by
category and artist can be computed; photographs are returned about three times as
often as the rest.

Rows are written in bulk: `executemany` on SQLite, `COPY` on PostgreSQL.
"""

from __future__ import annotations

import csv
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import Engine, FixedClock, Registry
from engine.seeding import (
    Compiler,
    Row,
    TemplateFile,
    Writer,
    chain,
    date_slots,
    drawn_from,
    prepare,
    render,
)
from handlers import desk
from handlers.bench import _order as bench_order
from handlers.store import Folders, services_factory

#: The diagrams deployed: the return procedure of this repository.
PROCESSES = Path(__file__).resolve().parent.parent / "processes"
#: When every template return is applied for (each moved later to its own date).
TEMPLATE_DAY = datetime(2026, 1, 5, tzinfo=UTC)
#: The end of the seeded history: in-flight returns started in the days before it.
HISTORY_END = date(2026, 11, 1)
#: Closed returns started over this many days before the in-flight ones.
HISTORY_DAYS = 730
#: In-flight returns started over the last this many days.
IN_FLIGHT_DAYS = 6
#: The share of returns still in flight.
IN_FLIGHT_SHARE = 0.05

#: Category: (share of returns, return rate, artist surnames).
CATEGORIES: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "painting": (0.26, 0.06, ("Lin", "Maier", "Renard", "Vogt", "Zhou", "Okafor", "Silva")),
    "print": (0.22, 0.07, ("Feng", "Lind", "Hart", "Tanaka", "Moreau")),
    "sculpture": (0.09, 0.05, ("Guo", "Bauer", "Costa", "Ng")),
    "antique": (0.07, 0.04, ("Qing workshop", "Ming workshop", "Meissen", "Sevres")),
    "craft": (0.16, 0.07, ("He", "Larsen", "Ito", "Dubois", "Kim")),
    "photograph": (0.20, 0.20, ("Ahl", "Novak", "Reyes", "Sato")),
}
#: Where an order was sold: (jurisdiction, currency, channel), and how often.
MARKETS: tuple[tuple[str, str, str, float], ...] = (
    ("CN", "CNY", "online_shop", 0.40),
    ("CN", "CNY", "store", 0.10),
    ("EU", "EUR", "marketplace", 0.30),
    ("other", "USD", "online_shop", 0.20),
)
#: A typical price per category, in CNY; EUR and USD prices are a tenth of it.
PRICES = {
    "painting": 32000,
    "print": 1200,
    "sculpture": 150000,
    "antique": 60000,
    "craft": 2800,
    "photograph": 1500,
}
#: The paths of closed returns, and how often each is taken.
CLOSED_STORIES: tuple[tuple[str, float], ...] = (
    ("refunded", 0.40),
    ("refunded_no_answer", 0.10),
    ("approval_escalated", 0.06),
    ("refund_escalated", 0.03),
    ("deduction", 0.05),
    ("declined_late", 0.10),
    ("declined_custom", 0.02),
    ("rejected", 0.04),
    ("exchange", 0.05),
    ("dispute", 0.02),
    ("payment_failed", 0.03),
    ("cancelled", 0.10),
)
#: Where returns in flight stand, and how often.
OPEN_STORIES: tuple[tuple[str, float], ...] = (
    ("waiting_approval", 0.30),
    ("waiting_parcel", 0.35),
    ("waiting_inspection", 0.15),
    ("waiting_refund", 0.20),
)
#: The reasons customers give, and how often (quality returns need no photos).
REASONS: tuple[tuple[str, float], ...] = (
    ("no_reason", 0.70),
    ("defective", 0.15),
    ("not_as_described", 0.15),
)
#: The people of the template returns, with their roles (they are added as users).
STAFF: dict[str, tuple[str, ...]] = {
    "owner": ("admin",),
    "aud": ("auditor",),
    "cs-ann": ("customer_service",),
    "cs-bob": ("customer_service",),
    "cs-lead": ("customer_service_supervisor",),
    "fin-fay": ("finance",),
    "fin-gus": ("finance_supervisor",),
    "exp-eli": ("expert",),
    "mgr-max": ("manager",),
    "inspector-ivy": ("inspector",),
    "log-leo": ("logistics",),
    "legal-lu": ("legal",),
    "scheduler": ("logistics",),
}
#: Tables of the procedure whose rows belong to one return (by its RMA number).
RMA_TABLES = ("ledger_entry", "shipment", "claim", "outbox_message", "customer_file_entry")
#: An odd 48-bit multiplier that scatters the copies' ids.
SCATTER = 0x9E37_79B9_7F4B

#: The tables written, in the order their foreign keys need.
TABLE_ORDER = (
    "sales_order",
    "sales_artwork",
    "instance",
    "task",
    "event",
    "rma_number",
    *RMA_TABLES,
)
#: Tables with an integer id the generator gives (PostgreSQL sequences set after).
SERIAL_TABLES = ("instance", "event", *RMA_TABLES)


# -- the template returns -------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One template return to run: its path, what was sold, and how the people and the
    customer behave (delays in hours after the previous step; score None: no answer)."""

    number: int
    story: str
    category: str
    jurisdiction: str
    currency: str
    channel: str
    reason: str
    price: int
    delays: tuple[float, ...]
    score: int | None

    @property
    def token(self) -> str:
        return f"QX{self.number:03d}Q"

    @property
    def closed(self) -> bool:
        return not self.story.startswith("waiting_")


def _specs(rng: random.Random, variants: int) -> list[Spec]:
    """`variants` templates per path and category, each in another market, with delays
    drawn from a long-tailed distribution."""
    specs: list[Spec] = []
    stories = [s for s, _ in CLOSED_STORIES] + [s for s, _ in OPEN_STORIES]
    markets = [m[:3] for m in MARKETS]
    for story in stories:
        for category in CATEGORIES:
            for variant in range(variants):
                jurisdiction, currency, channel = markets[(len(specs) + variant) % len(markets)]
                if story == "exchange" and channel == "store":
                    channel = "online_shop"
                reason = "no_reason"
                if story in ("refunded", "refunded_no_answer", "deduction", "waiting_parcel"):
                    reason = _pick(rng, REASONS)
                base = PRICES[category] // (1 if currency == "CNY" else 10)
                price = int(base * rng.choice((0.4, 0.7, 1, 1, 1.5, 2.5)))
                # Hours each step waits after the one before: mostly quick, a long tail.
                delays = tuple(round(min(rng.lognormvariate(1.6, 1.1), 200.0), 1) for _ in range(8))
                score = rng.choice((5, 5, 5, 4, 4, 3, 2, 1))
                specs.append(
                    Spec(
                        len(specs) + 1,
                        story,
                        category,
                        jurisdiction,
                        currency,
                        channel,
                        reason,
                        max(price, 50),
                        delays,
                        score,
                    )
                )
    return specs


def _order(spec: Spec) -> dict[str, Any]:
    """The template's order, written like docs/demo/orders.csv (the command benchmark's
    order, with this return's market and work), with tokens every copy replaces."""
    late = spec.story == "declined_late"
    delivered = TEMPLATE_DAY.date() - timedelta(days=40 if late else 2)
    token = spec.token
    order = bench_order(0, declined=False)
    order.update(
        order_number=f"ORD{token}",
        channel=spec.channel,
        jurisdiction=spec.jurisdiction,
        currency=spec.currency,
        sold_at=(delivered - timedelta(days=4)).isoformat(),
        delivered_at=delivered.isoformat(),
        payment_method="card",
        payer=f"Payer {token}",
        customer_name=f"Customer {token}",
        customer_email=f"customer{token.lower()}@example.com",
        customer_locale="en" if spec.jurisdiction != "CN" else "zh-Hant",
        customer_address=f"Street {token}",
        artwork_id=f"ART{token}",
        title=f"Title {token}",
        artist=f"Artist {token}",
        category=spec.category,
        price=str(spec.price),
        custom_made="yes" if spec.story == "declined_custom" else "no",
        condition_notes="as sold",
    )
    return order


class _Player:
    """Plays one template return through the engine, the clock moving with each step."""

    def __init__(self, engine: Engine, clock: FixedClock, folders: Folders, spec: Spec) -> None:
        self.engine = engine
        self.clock = clock
        self.folders = folders
        self.spec = spec
        self.delays = iter(spec.delays * 3)
        self.rma = ""

    def later(self, hours: float | None = None) -> None:
        step = next(self.delays) if hours is None else hours
        self.clock.set(self.clock.now() + timedelta(hours=step))

    def data(self) -> Mapping[str, Any]:
        return self.engine.show(self.rma).data or {}

    def open_steps(self) -> set[str]:
        return {t.bpmn_id for t in self.engine.show(self.rma).open_tasks}

    def complete(self, step: str, data: Mapping[str, Any], actor: str) -> None:
        self.engine.complete(f"{self.rma}:{step}", data, actor=actor)

    def message(self, name: str, payload: Mapping[str, Any], actor: str = "log-leo") -> None:
        self.engine.message(self.rma, name, payload, actor=actor)

    def run_due(self) -> None:
        self.engine.run_due(actor="scheduler")

    def apply(self) -> None:
        spec = self.spec
        evidence: list[Path] = []
        if spec.reason != "no_reason":  # quality returns come with a photo
            photo = self.folders.root / "photos" / f"{spec.token}.jpg"
            photo.parent.mkdir(parents=True, exist_ok=True)
            photo.write_bytes(f"photo of {spec.token}".encode())
            evidence.append(photo)
        result = desk.apply(
            self.engine,
            self.folders,
            order_number=f"ORD{spec.token}",
            artwork_ids=[f"ART{spec.token}"],
            request_type="exchange" if spec.story == "exchange" else "return",
            reason=spec.reason,
            description="The customer's words, as the desk wrote them down.",
            evidence=evidence,
            actor="cs-ann",
        )
        self.rma = str(result.instance.business_key)

    def approve(self, late: bool = False) -> None:
        if late:  # nobody approves in time: the deadline passes, the task escalates
            self.later(50)
            self.run_due()
        self.later()
        self.complete("approve_return", {"decision": "approve", "note": "ok"}, "cs-bob")
        data = self.data()
        amount = str(data.get("amount", "0"))
        if "confirm_refund_amount" in self.open_steps():
            self.later()
            decision = {"decision": "approve", "amount": amount, "note": "ok"}
            self.complete("confirm_refund_amount", decision, "fin-fay")
        if "appraise_work" in self.open_steps():
            self.later()
            findings = {"decision": "approve", "appraiser": "in_house", "findings": "As sold"}
            self.complete("appraise_work", findings, "exp-eli")
        if "sign_off_return" in self.open_steps():
            self.later()
            self.complete("sign_off_return", {"decision": "approve", "note": "ok"}, "mgr-max")

    def ship_and_receive(self) -> None:
        self.later()
        seller_pays = bool(self.data().get("seller_pays_return"))
        tracking = {"carrier": "SF Express", "tracking_number": f"TRK{self.spec.token}"}
        self.message("return_shipped", {} if seller_pays else tracking)
        self.later(24 + next(self.delays))
        self.message("return_received", {})

    def photo(self, name: str) -> str:
        """The inspector's photo, kept as evidence; its name for the report."""
        path = self.folders.root / "photos" / f"{self.spec.token}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{name} of {self.spec.token}".encode())
        desk.add_evidence(self.engine, self.folders, self.rma, [path], "inspector-ivy")
        return path.name

    def inspect(self, report: Mapping[str, Any] | None = None) -> None:
        self.later()
        accepted = {
            "outcome": "accepted",
            "grade": "excellent",
            "observations": [],
            "accessories": [],
        }
        self.complete("inspect_work", report or accepted, "inspector-ivy")

    def confirm_refund(self, late: bool = False) -> None:
        refund = self.data()["refund"]
        if late:  # finance waits until two days before the deadline: escalated
            escalate_at = datetime.fromisoformat(str(refund["escalate_at"]))
            self.clock.set(max(self.clock.now(), escalate_at) + timedelta(hours=1))
            self.run_due()
        self.later()
        amount = str(refund["amount"]["amount"])
        actor = "fin-gus" if late else "fin-fay"
        self.complete("confirm_refund", {"amount": amount, "channel": "original_payment"}, actor)

    def survey_and_follow_up(self) -> None:
        if self.spec.score is not None and self.spec.story != "refunded_no_answer":
            self.later(24 + next(self.delays))
            answer = {"score": self.spec.score, "comment": "Thank you."}
            self.message("customer_confirmation", answer, actor="cs-ann")
        else:  # no answer in 14 days
            self.later(14 * 24 + 1)
            self.run_due()
        if "review_repeats" in self.open_steps():  # the category is returned often
            self.later()
            action = {"action": "Asked the gallery to check the descriptions."}
            self.complete("review_repeats", action, "mgr-max")
        self.later(30 * 24 + 1)  # a month later: the call back
        self.run_due()
        if "call_back" in self.open_steps():
            self.later()
            self.complete("call_back", {"reached": True, "note": "All well."}, "cs-ann")


def _play(player: _Player, fail_payment: set[str]) -> None:
    story = player.spec.story
    player.apply()
    if story in ("declined_late", "declined_custom"):
        return
    if story == "waiting_approval":
        return
    if story == "rejected":
        player.later()
        decision = {"decision": "reject", "note": "Not the condition it was sold in."}
        player.complete("approve_return", decision, "cs-bob")
        return
    player.approve(late=story == "approval_escalated")
    if story == "waiting_parcel":
        return
    if story == "cancelled":
        player.later()
        player.engine.cancel(player.rma, actor="cs-ann", reason="The customer withdrew.")
        return
    player.ship_and_receive()
    if story == "waiting_inspection":
        return
    if story == "dispute":
        mismatch = {
            "outcome": "mismatch",
            "grade": "poor",
            "accessories": [],
            "observations": [
                {
                    "zone": "support",
                    "text": "Not the work sold",
                    "photos": [player.photo("back.jpg")],
                }
            ],
        }
        player.inspect(mismatch)
        player.later(24 * 10)
        report = {"authentic": False, "findings": "A reproduction"}
        player.message("appraisal_report", report, actor="desk")
        player.later()
        outcome = {"outcome": "reject", "note": "The work returned is not the work sold."}
        player.complete("decide_dispute", outcome, "legal-lu")
        return
    if story == "deduction":
        price = _decimal_text(player.data()["amount"])
        report = {
            "outcome": "accepted_with_deduction",
            "grade": "good",
            "observations": [
                {
                    "zone": "frame_glazing",
                    "text": "Corner chipped",
                    "photos": [player.photo("corner.jpg")],
                }
            ],
            "accessories": [],
            "deduction_amount": price,
            "deduction_currency": player.spec.currency,
        }
        player.inspect(report)
    else:
        player.inspect()
    if story == "exchange":
        player.later()
        data = player.data()
        cheaper = player.spec.number % 2 == 0
        price = _decimal_text(data["amount"], 0.8 if cheaper else 1.25)
        replacement = {
            "artwork_id": f"REP{player.spec.token}",
            "title": f"Title {player.spec.token}, another",
            "artist": f"Artist {player.spec.token}",
            "price_amount": price,
        }
        player.complete("confirm_replacement", replacement, "cs-ann")
        if not cheaper:
            player.later()
            owed = player.data()["exchange"]["amount"]
            paid = {"reference": f"PAY{player.spec.token}", "amount": owed}
            player.message("difference_paid", paid, actor="fin-fay")
        player.later()
        player.complete("pack_replacement", {"checked": True}, "log-leo")
        player.survey_and_follow_up()
        return
    if story == "waiting_refund":
        return
    if story == "payment_failed":
        fail_payment.add(player.rma)
    player.confirm_refund(late=story == "refund_escalated")
    if story == "payment_failed":
        player.later()
        player.engine.retry(player.rma, actor="fin-fay")
    player.survey_and_follow_up()


def _decimal_text(amount: Any, factor: float = 0.1) -> str:
    """`amount` (decimal text) times `factor`, as decimal text with two places."""
    from decimal import ROUND_HALF_UP, Decimal

    value = Decimal(str(amount)) * Decimal(str(factor))
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _registry(fail_payment: set[str]) -> Registry:
    """The handlers of the entry points, the payment failing once for the returns in
    `fail_payment` (a payment provider that timed out)."""
    registry = Registry()
    for info in Registry.from_entry_points():
        handler = info.handler
        if info.operator == "payments.refund":
            handler = _failing_once(handler, fail_payment)
        registry.register(info.operator, handler, info.source)
    return registry


def _failing_once(handler: Any, fail: set[str]) -> Any:
    def refund(params: Mapping[str, Any], ctx: Any) -> Any:
        if ctx.business_key in fail:
            fail.discard(ctx.business_key)
            raise TimeoutError("the payment provider did not answer in 30 s")
        return handler(params, ctx)

    refund.__doc__ = handler.__doc__
    return refund


@dataclass
class Templates:
    """The template returns as run: their specs, and the SQLite file holding them."""

    specs: list[Spec]
    path: Path
    #: RMA number of each spec's return.
    rmas: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_templates(
    workdir: Path, seed: int, *, variants: int = 1, progress: Callable[[str], None] = lambda _: None
) -> Templates:
    """Run the template returns through the engine into `workdir`/templates.db."""
    began = time.perf_counter()
    rng = _rng(f"templates-{seed}")
    specs = _specs(rng, variants)
    folders = Folders(workdir / "template-data")
    clock = FixedClock(TEMPLATE_DAY)
    fail_payment: set[str] = set()
    path = workdir / "templates.db"
    engine = Engine(
        f"sqlite:///{path}",
        clock=clock,
        registry=_registry(fail_payment),
        services=services_factory(folders),
    )
    engine.init()
    engine.deploy([PROCESSES], actor="owner")
    orders = workdir / "template-orders.csv"
    with orders.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(_order(specs[0])))
        writer.writeheader()
        writer.writerows(_order(spec) for spec in specs)
    desk.import_orders(engine, folders, orders, actor="owner")
    made = Templates(specs, path)
    # Task and instance ids from the seed too: handlers derive numbers from them.
    with drawn_from(_rng(f"ids-{seed}")):
        for spec in specs:
            # Each at a working hour; closed ones finish before the next starts, and the
            # ones left in flight come last, so no template sees another's timers fire.
            hour = 8 + spec.number % 9
            clock.set(TEMPLATE_DAY + timedelta(hours=hour, minutes=7 * (spec.number % 8)))
            player = _Player(engine, clock, folders, spec)
            _play(player, fail_payment)
            made.rmas[spec.number] = player.rma
    engine.db.dispose()
    made.seconds = time.perf_counter() - began
    progress(f"{len(specs)} template returns run through the engine in {made.seconds:.1f} s")
    return made


def _rng(name: str) -> random.Random:
    """A generator seeded by `name`: repeatable on purpose, nothing secret drawn from it."""
    return random.Random(name)  # noqa: S311


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    names = [name for name, _ in weighted]
    return rng.choices(names, weights=[w for _, w in weighted])[0]


# -- copies -------------------------------------------------------------------------------------


@dataclass
class Template:
    """One template return's rows, each text split around what every copy varies."""

    spec: Spec
    days: int  # from its start to its last change, in whole days
    definition: str  # the content hash of its version
    instance: Row
    tasks: list[Row]
    events: list[Row]
    rma_rows: dict[str, list[Row]]
    rma_number: Row
    order: Row
    artworks: list[Row]
    uuids: int
    stamps: int
    dates: tuple[str, ...]
    drawn: tuple[str, ...]  # slots of numbers a handler drew (tracking, references)
    order_dates: list[str] = field(default_factory=list)


def load_templates(made: Templates) -> list[Template]:
    """Read each template return's rows from the file it was run into."""
    source = TemplateFile(made.path)
    try:
        hashes = source.definitions()
        return [_load(source, spec, made.rmas[spec.number], hashes) for spec in made.specs]
    finally:
        source.close()


def _load(source: TemplateFile, spec: Spec, rma: str, hashes: Mapping[int, str]) -> Template:
    [instance] = source.rows("instance", "business_key", rma)
    number = instance["id"]
    rma_rows = {table: source.rows(table, "rma", rma, "id") for table in RMA_TABLES}
    token = spec.token
    tokens = {
        rma: "RMA",
        f"Artist {token}": "ARTIST",
        f"Title {token}": "TITLE",
        f"Customer {token}": "CUSTOMER",
        f"Payer {token}": "CUSTOMER",
        f"customer{token.lower()}": "EMAIL",
        f"ORD{token}": "ORDER",
        f"ART{token}": "ARTWORK",
        token: "ID",
    }
    # Numbers the handlers drew (tracking numbers, appraisal references): one each copy.
    drawn: list[str] = []
    for table, column in (("shipment", "tracking_number"), ("claim", "reference")):
        for row in rma_rows[table]:
            value = str(row[column])
            if token not in value and rma not in value:
                letters = re.match(r"[A-Z]*", value)
                key = f"N{letters.group() if letters else ''}-{len(drawn)}"
                tokens[value] = key
                drawn.append(key)
    compiler = Compiler(tokens)
    # The events first, so that ids are numbered in the order of the history.
    events = [compiler.row(e) for e in source.rows("event", "instance_id", number, "seq")]
    order = compiler.row(source.rows("sales_order", "order_number", f"ORD{token}")[0])
    artworks = [
        compiler.row(a) for a in source.rows("sales_artwork", "order_number", f"ORD{token}")
    ]
    started = datetime.fromisoformat(str(instance["started_at"]))
    ended = datetime.fromisoformat(str(instance["updated_at"]))
    template = Template(
        spec=spec,
        days=(ended.date() - started.date()).days,
        definition=hashes[int(instance["definition_id"])],
        instance=compiler.row(instance),
        tasks=[
            compiler.row(t) for t in source.rows("task", "instance_id", number, "created_at, id")
        ],
        events=events,
        rma_rows={t: [compiler.row(r) for r in rows] for t, rows in rma_rows.items()},
        rma_number=compiler.row(source.rows("rma_number", "number", rma)[0]),
        order=order,
        artworks=artworks,
        uuids=len(compiler.uuids),
        stamps=compiler.stamps,
        dates=tuple(sorted(compiler.dates)),
        drawn=tuple(drawn),
    )
    template.order_dates = date_slots([order, *artworks])
    return template


# -- seeding ------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the generator made, as it counted it."""

    url: str
    returns: int
    orders: int = 0
    seconds: float = 0.0
    template_seconds: float = 0.0
    templates: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_story: Counter[str] = field(default_factory=Counter)
    by_currency: Counter[str] = field(default_factory=Counter)
    rmas: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Copy:
    start: date
    order_in_day: int
    template: int
    artist: str


def _plan(templates: Sequence[Template], count: int, rng: random.Random) -> list[_Copy]:
    """Which template each copy is made from, and on which day it starts."""
    by_key: dict[tuple[str, str], list[int]] = {}
    for number, template in enumerate(templates):
        by_key.setdefault((template.spec.story, template.spec.category), []).append(number)
    categories = [(c, share) for c, (share, _, _) in CATEGORIES.items()]
    in_flight = round(count * IN_FLIGHT_SHARE)
    first_day = HISTORY_END - timedelta(days=IN_FLIGHT_DAYS + HISTORY_DAYS)
    copies: list[_Copy] = []
    for index in range(count):
        category = _pick(rng, categories)
        story = _pick(rng, OPEN_STORIES if index < in_flight else CLOSED_STORIES)
        number = rng.choice(by_key[(story, category)])
        template = templates[number]
        if index < in_flight:  # started in the last days, still open at HISTORY_END
            latest = HISTORY_END - timedelta(days=template.days + 1)
            start = latest - timedelta(days=rng.randrange(IN_FLIGHT_DAYS))
        else:  # closed before the returns in flight started
            start = first_day + timedelta(days=rng.randrange(HISTORY_DAYS - template.days))
        artist = f"{rng.choice('ABCDEFGHJKLMNPRSTW')}. {rng.choice(CATEGORIES[category][2])}"
        copies.append(_Copy(start, template.spec.number, number, artist))
    copies.sort(key=lambda c: (c.start, c.order_in_day))
    return copies


def _values(
    template: Template, index: int, rma: str, shift: int, salt: int, artist: str
) -> dict[str, str]:
    """What fills each slot of `template` in the copy numbered `index`."""
    ident = f"{index:07d}"
    values = _names(ident, artist)
    values["RMA"] = rma
    for key in template.drawn:  # a number a handler drew: its letters, then the copy's
        letters, drawn = key[1:].split("-")
        values[key] = f"{letters}{index:08d}{drawn}"
    for number in range(template.uuids):
        # Scattered as uuid4 ids are (an index over task ids sees them in no order), and
        # unique: (index, number) -> 48 bits, times an odd number, is one-to-one.
        mixed = ((index << 16 | number) * SCATTER) & 0xFFFF_FFFF_FFFF
        values[f"u{number}"] = (
            f"{mixed >> 16:08x}-{mixed & 0xFFFF:04x}-4{salt:03x}-a000-{salt:012x}"
        )
    delta = timedelta(days=shift)
    for day in template.dates:
        values[f"d{day}"] = (date.fromisoformat(day) + delta).isoformat()
    midnight = datetime.combine(TEMPLATE_DAY.date() + delta, datetime.min.time(), UTC)
    for number in range(template.stamps):
        values[f"s{number}"] = f"{midnight.timestamp() + number / 1000:.3f}"
    return values


def _names(ident: str, artist: str) -> dict[str, str]:
    return {
        "ARTIST": artist,
        "TITLE": f"Work no. {ident}",
        "CUSTOMER": f"Customer {ident}",
        "EMAIL": f"customer{ident}",
        "ORDER": f"SO-{ident}",
        "ARTWORK": f"AW-{ident}",
        "ID": ident,
    }


def seed(
    url: str,
    count: int,
    *,
    seed: int = 0,
    variants: int = 1,
    batch: int = 2000,
    progress: Callable[[str], None] = lambda _: None,
) -> Seeded:
    """Fill the database at `url`, which holds no return and no user yet, with `count`
    returns (IN_FLIGHT_SHARE of them in flight), the orders they came from, and orders
    never returned; the same `seed` makes the same database."""
    began = time.perf_counter()
    if "://" not in url:  # a SQLite file, as --db takes it
        url = f"sqlite:///{url}"
    definitions = prepare(url, [PROCESSES], STAFF, actor="owner")
    with tempfile.TemporaryDirectory(prefix="artreturns-seed-") as tmp:
        made = run_templates(Path(tmp), seed, variants=variants, progress=progress)
        templates = load_templates(made)
    result = Seeded(url, count, template_seconds=made.seconds, templates=len(templates))
    rng = _rng(f"copies-{seed}")
    salt = _rng(f"salt-{seed}").getrandbits(12)
    copies = _plan(templates, count, rng)
    writer = Writer(url, TABLE_ORDER, SERIAL_TABLES)
    sequences: Counter[int] = Counter()
    event_id = 0
    for index, copy in enumerate(copies, start=1):
        template = templates[copy.template]
        sequences[copy.start.year] += 1
        rma = f"RMA-{copy.start.year}-{sequences[copy.start.year]:06d}"
        shift = (copy.start - TEMPLATE_DAY.date()).days
        values = _values(template, index, rma, shift, salt, copy.artist)
        instance = render(template.instance, values)
        instance["id"] = index
        instance["definition_id"] = definitions[template.definition]
        events = [render(event, values) for event in template.events]
        for event in events:
            event_id += 1
            event["id"] = event_id
            event["instance_id"] = index
        chain(instance, events)
        writer.add("instance", instance)
        for event in events:
            writer.add("event", event)
        for task in template.tasks:
            row = render(task, values)
            row["instance_id"] = index
            writer.add("task", row)
        writer.add("sales_order", render(template.order, values))
        for artwork in template.artworks:
            writer.add("sales_artwork", render(artwork, values))
        number = render(template.rma_number, values)
        number["year"] = copy.start.year
        number["sequence"] = sequences[copy.start.year]
        writer.add("rma_number", number)
        for table, rows in template.rma_rows.items():
            for row in rows:
                rendered = render(row, values)
                del rendered["id"]  # numbered by the database
                writer.add(table, rendered)
        spec = template.spec
        result.by_status[str(template.instance["status"])] += 1
        result.by_category[spec.category] += 1
        result.by_story[spec.story] += 1
        result.by_currency[spec.currency] += 1
        result.rmas.append(rma)
        if index % batch == 0:
            writer.flush()
            progress(f"returns seeded: {index:,} of {count:,}")
    result.orders = count + _unreturned(writer, templates, result.by_category, rng)
    writer.close()
    result.seconds = time.perf_counter() - began
    progress(f"{count:,} returns and {result.orders:,} orders seeded in {result.seconds:.0f} s")
    return result


def _unreturned(
    writer: Writer, templates: Sequence[Template], returned: Mapping[str, int], rng: random.Random
) -> int:
    """Orders never returned, so that each category is returned at its rate in
    CATEGORIES; each made from a template's order, with its own number, artist and dates."""
    by_category: dict[str, list[Template]] = {}
    for template in templates:
        by_category.setdefault(template.spec.category, []).append(template)
    first_day = HISTORY_END - timedelta(days=IN_FLIGHT_DAYS + HISTORY_DAYS)
    offset = (first_day - TEMPLATE_DAY.date()).days
    made = 0
    index = sum(returned.values())
    for category, (_, rate, surnames) in CATEGORIES.items():
        count = returned.get(category, 0)
        for _ in range(round(count / rate) - count):
            index += 1
            made += 1
            template = rng.choice(by_category[category])
            artist = f"{rng.choice('ABCDEFGHJKLMNPRSTW')}. {rng.choice(surnames)}"
            values = _names(f"{index:07d}", artist)
            delta = timedelta(days=offset + rng.randrange(HISTORY_DAYS))
            for key in template.order_dates:
                values[key] = (date.fromisoformat(key[1:]) + delta).isoformat()
            writer.add("sales_order", render(template.order, values))
            for artwork in template.artworks:
                writer.add("sales_artwork", render(artwork, values))
            if made % 20000 == 0:
                writer.flush()
    return made


# -- the benchmark of `report` ------------------------------------------------------------------


def time_reports(
    report: Any,
    url: str,
    label: str,
    *,
    runs: int = 3,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Time `Engine.report` on the seeded database at `url`, as of HISTORY_END: the
    default period, and by category; the median of `runs` after a warm-up. Then the
    whole `artreturns report` command, in a process of its own, the same way."""
    import os
    import statistics

    from engine.bench import Command, time_commands

    engine = Engine(url, clock=FixedClock(datetime.combine(HISTORY_END, datetime.min.time(), UTC)))
    cases: list[tuple[str, dict[str, Any]]] = [
        ("report", {}),
        ("report --by category", {"by": "category"}),
    ]
    for name, options in cases:
        times: list[float] = []
        for number in range(runs + 1):
            began = time.perf_counter()
            engine.report(actor="owner", **options)
            if number:
                times.append(time.perf_counter() - began)
        median = statistics.median(times)
        verdict = "met" if median < 5 else "NOT met"
        report.add(
            f"{name} ({label})",
            median,
            "s",
            f"median of {runs} runs, best {min(times):.2f} s; target under 5 s: {verdict}",
        )
        progress(f"timed {name} on {label}: {median:.2f} s")
    engine.db.dispose()
    command = Command(
        f"artreturns report ({label})",
        lambda _: ["--db", url, "--as", "owner", "report"],
        REPORT_TARGET_MS,
        "the whole command in a process of its own: start-up, the indicators as of now, "
        "the table printed",
    )
    time_commands(report, [command], env=os.environ, runs=runs, progress=progress)


#: `report` on 100,000 returns (issue #8).
REPORT_TARGET_MS = 5000


def time_seeded(
    report: Any,
    urls: Sequence[str],
    *,
    runs: int = 3,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """`artreturns bench --report-on URL ...`: time `report` on databases seeded before
    (`bench --seed-history N`), one after the other in this run."""
    for url in urls:
        label = "PostgreSQL" if url.startswith("postgres") else "SQLite"
        counted = Engine(url)
        try:
            opened = counted.report(actor="owner").volume.opened
        finally:
            counted.db.dispose()
        report.add(
            f"returns in the database ({label})",
            opened,
            "returns",
            "seeded before with `bench --seed-history`",
        )
        time_reports(report, url, label, runs=runs, progress=progress)


def measure(
    report: Any,
    count: int,
    *,
    pg: str | None = None,
    seed: int = 0,
    runs: int = 3,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """`artreturns bench --report-history N`: seed `count` returns on a temporary SQLite
    file (and in a schema of its own at `pg`), then time `report` on each."""
    from engine.bench import postgres_schema

    with tempfile.TemporaryDirectory(prefix="artreturns-bench-report-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'history.db'}"
        seeded = seed_history_figure(report, url, count, seed, "SQLite", progress)
        del seeded
        time_reports(report, url, "SQLite", runs=runs, progress=progress)
    if pg:
        with postgres_schema(pg) as url:
            seed_history_figure(report, url, count, seed, "PostgreSQL", progress)
            time_reports(report, url, "PostgreSQL", runs=runs, progress=progress)


def seed_history_figure(
    report: Any, url: str, count: int, seed_value: int, label: str, progress: Callable[[str], None]
) -> Seeded:
    seeded = seed(url, count, seed=seed_value, progress=progress)
    statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(seeded.by_status.items()))
    report.add(
        f"seeding {count:,} returns ({label})",
        seeded.seconds,
        "s",
        f"{statuses}; {seeded.orders:,} orders; {seeded.templates} template returns run "
        f"through the engine in {seeded.template_seconds:.0f} s of it",
    )
    return seeded


__all__ = ["Seeded", "measure", "seed", "time_reports", "time_seeded"]
