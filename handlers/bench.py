"""A database of many returns, for `artreturns bench --cli-returns N`.

The returns are made in one process, through the desk and the engine's API (the same
calls the commands make, without starting a command for each), from orders written
like docs/demo/orders.csv. They stand at different stages, as in a shop that has taken
returns for years: most are finished (declined by the policy, or cancelled after the
approval), a few wait for customer service, for the parcel, or for the inspector.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import Engine, FixedClock
from engine.bench import Command, command_environment
from handlers import desk
from handlers.store import Folders, services_factory

#: The diagrams deployed: the return procedure of this repository.
PROCESSES = Path(__file__).resolve().parent.parent / "processes"
#: When every return is applied for (and advanced).
APPLIED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
#: When the timed commands run: after the returns were made, before any approval is
#: due (two days later), so that no timer fires while commands are timed.
NOW = "2026-11-02T18:00:00Z"
#: The targets, in milliseconds, of whole `artreturns` processes (issue #4).
READ_TARGET_MS = 300.0
COMPLETE_TARGET_MS = 600.0
#: Who acts in the timed commands, and with which role.
USERS = {
    "owner": ("admin",),
    "cs-ann": ("customer_service",),
    "inspector-ivy": ("inspector",),
    "fin-fay": ("finance",),
}
#: Of every 100 returns, how many stand at each stage.
STAGES = (
    ("inspection", 1),  # received, waiting for the inspector (inspect_work)
    ("parcel", 2),  # approved, waiting for the parcel (return_shipped)
    ("approval", 2),  # waiting for customer service (approve_return)
    ("cancelled", 5),  # approved, then withdrawn by the customer
    ("declined", 90),  # delivered 13 days before: declined by the 7-day rule
)
APPROVE = {"decision": "approve", "note": "Sealed, within the period"}


@dataclass
class Built:
    """The database made, and which return stands where."""

    url: str
    data: Path
    seconds: float
    stages: dict[str, list[str]] = field(default_factory=dict)


def stage_of(index: int, fresh: int) -> str:
    """The stage of the index-th return: the first `fresh` wait for approval (each timed
    `complete` takes one), the others follow STAGES."""
    if index < fresh:
        return "approval"
    slot = (index - fresh) % 100
    for stage, share in STAGES:
        if slot < share:
            return stage
        slot -= share
    raise AssertionError("STAGES add up to 100")


def _order(index: int, declined: bool) -> dict[str, Any]:
    delivered = APPLIED.date() - timedelta(days=13 if declined else 5)
    sold = delivered - timedelta(days=3)
    return {
        "order_number": f"B-{index:06d}",
        "channel": "online_shop",
        "jurisdiction": "CN",
        "currency": "CNY",
        "sold_at": sold.isoformat(),
        "delivered_at": delivered.isoformat(),
        "payment_method": "alipay",
        "payer": f"Customer {index}",
        "shipping_charge": "0",
        "customer_name": f"Customer {index}",
        "customer_email": f"customer{index}@example.com",
        "customer_locale": "zh-Hant" if index % 2 else "en",
        "customer_address": f"{index % 200 + 1} Fuxing Road, Shanghai",
        "artwork_id": f"BW-{index:06d}",
        "title": f"Mist over Huangshan, open edition no. {index}",
        "artist": "Lin Feng",
        "category": "print",
        "price": str(800 + index % 700),
        "custom_made": "no",
        "indivisible_set": "no",
        "auction_lot": "no",
        "guarantee_years": "0",
        "authenticity_disclaimer": "no",
        "set_id": "",
        "condition_grade": "excellent",
        "condition_notes": "sealed",
        "certificate": "",
        "accessories": "",
    }


def build(
    workdir: Path,
    count: int,
    *,
    fresh: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> Built:
    """Make `count` returns in a new SQLite file in `workdir`; at least `fresh` of them
    wait for approval. Their notices go to files under `workdir`."""
    began = time.perf_counter()
    folders = Folders(workdir / "data")
    url = f"sqlite:///{workdir / 'returns.db'}"
    engine = Engine(url, clock=FixedClock(APPLIED), services=services_factory(folders))
    engine.init()
    engine.deploy([PROCESSES], actor="owner")
    stages = [stage_of(index, fresh) for index in range(count)]
    orders = workdir / "orders.csv"
    with orders.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(_order(0, declined=False)))
        writer.writeheader()
        for index, stage in enumerate(stages):
            writer.writerow(_order(index, declined=stage == "declined"))
    desk.import_orders(engine, folders, orders, actor="bench")
    built = Built(url, folders.root, 0.0)
    for index, stage in enumerate(stages):
        rma = _make(engine, folders, index, stage)
        built.stages.setdefault(stage, []).append(rma)
        if (index + 1) % 1000 == 0:
            progress(f"returns made: {index + 1:,} of {count:,}")
    for name, roles in USERS.items():
        engine.add_user(name, roles, actor="owner")
    engine.db.dispose()
    built.seconds = time.perf_counter() - began
    return built


def _make(engine: Engine, folders: Folders, index: int, stage: str) -> str:
    result = desk.apply(
        engine,
        folders,
        order_number=f"B-{index:06d}",
        artwork_ids=[f"BW-{index:06d}"],
        request_type="return",
        reason="no_reason",
        description="Changed my mind; still sealed.",
        actor="cs-ann",
    )
    rma = result.instance.label
    if stage in ("declined", "approval"):
        return rma
    engine.complete(f"{rma}:approve_return", APPROVE, actor="cs-ann")
    if stage == "cancelled":
        engine.cancel(rma, actor="cs-ann", reason="The customer withdrew the return.")
    elif stage == "inspection":
        shipped = {"carrier": "SF Express", "tracking_number": f"SF{2000000000 + index}"}
        engine.message(rma, "return_shipped", shipped, actor="cs-ann")
        engine.message(rma, "return_received", {}, actor="cs-ann")
    return rma


def environment(built: Built, workdir: Path) -> dict[str, str]:
    """What the timed commands run with: the built database and data folder, the time."""
    return command_environment(
        workdir,
        ARTRETURNS_DB=built.url,
        ARTRETURNS_DATA=str(built.data),
        ARTRETURNS_NOW=NOW,
    )


def commands(built: Built, runs: int) -> list[Command]:
    """The commands timed on a built database, each with its target: the interpreter
    and `--help` (the floor), the worklists, one return, completing an approval."""
    waiting = built.stages.get("approval", [])
    inspecting = built.stages.get("inspection", [])
    if len(waiting) < runs + 1 or not inspecting:
        raise ValueError("build() with fresh >= runs + 1 and at least one inspection")
    shown = inspecting[0]
    worklist = _tasks(len(waiting) + len(inspecting), "open user task")
    approve = json.dumps(APPROVE)
    return [
        Command(
            "python -c pass",
            lambda _: ["-c", "pass"],
            note="the interpreter alone, for comparison",
            program=Path(sys.executable),
        ),
        Command(
            "python -c 'import sqlalchemy.orm'",
            lambda _: ["-c", "import sqlalchemy.orm"],
            note="SQLAlchemy with its ORM alone, for comparison: every command that reads "
            "the database imports it",
            program=Path(sys.executable),
        ),
        Command("artreturns --help", lambda _: ["--help"], note="the floor: interpreter, imports"),
        Command(
            "artreturns tasks (an inspector)",
            lambda _: ["--as", "inspector-ivy", "tasks"],
            READ_TARGET_MS,
            f"the inspector's worklist: {_tasks(len(inspecting), 'task')}",
        ),
        Command(
            "artreturns tasks --all",
            lambda _: ["--as", "owner", "tasks", "--all"],
            READ_TARGET_MS,
            f"an admin, every worklist: {worklist}",
        ),
        Command(
            "artreturns tasks --all --csv",
            lambda _: ["--as", "owner", "tasks", "--all", "--csv"],
            note=f"for comparison: the same {worklist} without a table",
        ),
        Command(
            "artreturns show RMA",
            lambda _: ["--as", "owner", "show", shown],
            READ_TARGET_MS,
            f"{shown}: approved, shipped, received, waiting for inspection",
        ),
        Command(
            "artreturns complete TASK",
            lambda run: [
                "--as",
                "cs-ann",
                "complete",
                f"{waiting[run]}:approve_return",
                "--data",
                approve,
            ],
            COMPLETE_TARGET_MS,
            "approve_return of another return each run, with valid form data, and the "
            "engine's step after it",
        ),
    ]


def _tasks(count: int, what: str) -> str:
    return f"{count:,} {what}{'' if count == 1 else 's'}"


__all__ = [
    "APPROVE",
    "NOW",
    "USERS",
    "Built",
    "build",
    "commands",
    "environment",
    "stage_of",
]
