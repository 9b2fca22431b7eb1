"""A returns desk for process tests: the real handlers, the real diagrams, a moving clock.

Every call builds a fresh `Engine` on the same database, so each step starts from what
the previous one saved: state is reloaded between every step, as it is between two CLI
commands. Tests read the outbox, the ledger and the history straight from the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from support import PROCESSES, T0

from engine import Engine, FixedClock
from engine.canonical import load_data
from engine.persistence import InstanceRecord
from engine.runner import instance_data
from engine.views import CommandResult, EventView, TaskView
from handlers import desk as returns_desk
from handlers.store import Folders, services_factory
from handlers.store.tables import ledger, outbox

FIXTURES = Path(__file__).parent / "fixtures"
OWNER = "owner"


class Desk:
    """Operators at work on the return procedure, one engine per step."""

    def __init__(self, url: str | URL, root: Path, now: datetime = T0) -> None:
        self.url = url
        self.folders = Folders(root)
        self.clock = FixedClock(now)
        self._engines: list[Engine] = []
        first = self.engine()
        first.init()
        first.deploy(sorted(PROCESSES.glob("*.bpmn")) + sorted(PROCESSES.glob("*.dmn")), OWNER)

    # -- the engine, fresh every time ------------------------------------------------

    def engine(self) -> Engine:
        for old in self._engines:
            old.db.dispose()
        self._engines = [
            Engine(self.url, clock=self.clock, services=services_factory(self.folders))
        ]
        return self._engines[0]

    def close(self) -> None:
        self.check_stored_data()
        for old in self._engines:
            old.db.dispose()
        self._engines = []

    def check_stored_data(self) -> None:
        """Every instance's data as stored beside its state (what `show` reads) is the
        data its restored state gives."""
        engine = self.engine()
        with engine.db.read() as session:
            for record in session.scalars(select(InstanceRecord)).all():
                assert record.data is not None, f"{record.business_key}: no stored data"
                restored = engine._restore(session.connection(), record, self.now)
                assert load_data(record.data) == instance_data(restored), record.business_key

    # -- time --------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def at(self, when: datetime) -> None:
        """Move the clock (forward only) without running anything."""
        assert when >= self.now, f"time goes forward: {when} < {self.now}"
        self.clock.set(when)

    def advance(self, **delta: float) -> list[Any]:
        """Move the clock by a timedelta's keywords and fire every timer that is due."""
        self.at(self.now + timedelta(**delta))
        return self.engine().run_due(actor="timer")

    # -- the desk ---------------------------------------------------------------------

    def import_orders(self, orders: Sequence[Mapping[str, Any]] | Path) -> None:
        if isinstance(orders, Path):
            path = orders
        else:
            path = self.folders.root / "orders-import.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(list(orders)), encoding="utf-8")
        returns_desk.import_orders(self.engine(), self.folders, path, actor="owner")

    def apply(
        self,
        order: str,
        artworks: Sequence[str],
        *,
        type: str = "return",
        reason: str = "no_reason",
        description: str = "The customer asks to return the work.",
        evidence: Sequence[Path] = (),
        actor: str = "cs-ann",
        process: str = "return_request",
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a return as customer service does at intake; returns its RMA number.

        `process` starts another flow (e.g. "refund") with the same intake data plus
        `extra`, to run one part of the procedure on its own."""
        result = returns_desk.apply(
            self.engine(),
            self.folders,
            order_number=order,
            artwork_ids=list(artworks),
            request_type=type,
            reason=reason,
            description=description,
            evidence=list(evidence),
            actor=actor,
            process=process,
            extra=extra,
        )
        assert result.instance.business_key is not None
        return result.instance.business_key

    def add_evidence(self, rma: str, files: Sequence[Path], actor: str = "inspector-ivy") -> None:
        returns_desk.add_evidence(self.engine(), self.folders, rma, list(files), actor)

    # -- tasks and messages -----------------------------------------------------------

    def tasks(self, rma: str, role: str | None = None) -> list[TaskView]:
        """The open user and manual tasks of one return."""
        return self.engine().tasks(instance=rma, role=role)

    def open_steps(self, rma: str) -> list[str]:
        return sorted(t.bpmn_id for t in self.tasks(rma))

    def task(self, rma: str, bpmn_id: str) -> TaskView:
        found = [t for t in self.tasks(rma) if t.bpmn_id == bpmn_id]
        assert len(found) == 1, f"{bpmn_id} open {len(found)} times; open: {self.open_steps(rma)}"
        return found[0]

    def complete(
        self, rma: str, bpmn_id: str, data: Mapping[str, Any] | None = None, *, actor: str
    ) -> CommandResult:
        return self.engine().complete(self.task(rma, bpmn_id).id, dict(data or {}), actor=actor)

    def message(
        self, rma: str, name: str, payload: Mapping[str, Any] | None = None, actor: str = "desk"
    ) -> CommandResult:
        return self.engine().message(rma, name, dict(payload or {}), actor=actor)

    # -- what happened ------------------------------------------------------------------

    def show(self, rma: str) -> Any:
        return self.engine().show(rma)

    def data(self, rma: str) -> dict[str, Any]:
        return dict(self.show(rma).data)

    def status(self, rma: str) -> str:
        return str(self.show(rma).status)

    def history(self, rma: str) -> list[EventView]:
        return self.engine().history(rma)

    def completed_steps(self, rma: str) -> list[str]:
        """bpmn ids of the user and service tasks completed, in order (the path taken)."""
        return [
            e.bpmn_id
            for e in self.history(rma)
            if e.kind in ("task_completed", "handler_result") and e.bpmn_id
        ]

    def notices(self, rma: str) -> list[str]:
        """Names of the notices sent to the customer, in the order they were sent."""
        engine = self.engine()
        with engine.db.read() as session:
            rows = session.execute(
                select(outbox.c.notice).where(outbox.c.rma == rma).order_by(outbox.c.id)
            ).all()
        return [row.notice for row in rows]

    def ledger(self, rma: str) -> list[dict[str, Any]]:
        """Ledger entries of one return: kind, amount (minor units), currency, channel."""
        engine = self.engine()
        with engine.db.read() as session:
            rows = session.execute(
                select(ledger).where(ledger.c.rma == rma).order_by(ledger.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """A returns desk on SQLite with all of processes/ deployed."""
    made = Desk(f"sqlite:///{tmp_path / 'returns.db'}", tmp_path / "returns-data")
    yield made
    made.close()


@pytest.fixture
def pg_desk(pg_url: URL, tmp_path: Path) -> Iterator[Desk]:
    """The same desk on PostgreSQL (a fresh schema)."""
    made = Desk(pg_url, tmp_path / "returns-data")
    yield made
    made.close()
