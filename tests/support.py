"""Constants, helpers and test handlers shared by the test modules."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import BpmnError, Engine, FixedClock, Registry, Settings, TaskContext

if TYPE_CHECKING:
    from handlers.store import Folders

FIXTURES = Path(__file__).parent / "fixtures"
BPMN = FIXTURES / "bpmn"
PROCESSES = Path(__file__).parent.parent / "processes"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PG_ENV = "ARTRETURNS_TEST_PG"


# -- handlers used by the fixture diagrams ------------------------------------------


class Recorder:
    """Handlers for tests: they record every call and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], TaskContext]] = []
        self.failures: dict[str, Exception] = {}

    def _note(self, operator: str, params: Mapping[str, Any], ctx: TaskContext) -> None:
        self.calls.append((operator, dict(params), ctx))
        failure = self.failures.get(operator)
        if failure is not None:
            raise failure

    def echo(self, params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Return the parameters it was given."""
        self._note("test.echo", params, ctx)
        return {"echoed": dict(params), "attempt": ctx.attempt}

    def double(self, params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Return twice the parameter `value`."""
        self._note("test.double", params, ctx)
        return {"value": params["value"] * 2}

    def reject(self, params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Throw the BPMN error whose code is the parameter `code`."""
        self._note("test.reject", params, ctx)
        raise BpmnError(str(params.get("code", "rejected")), "rejected by test", {"why": "test"})

    def registry(self) -> Registry:
        registry = Registry()
        registry.register_mapping(
            {"test.echo": self.echo, "test.double": self.double, "test.reject": self.reject},
            source="tests",
        )
        return registry


def fixture(*names: str) -> list[Path]:
    """Paths of fixture diagrams by file name."""
    return [BPMN / name for name in names]


def clock_of(engine: Engine) -> FixedClock:
    clock = engine.clock
    assert isinstance(clock, FixedClock)
    return clock


def prepare_returns(
    url: str, root: Path, orders: int, applied: int | None = None
) -> tuple[Engine, Folders, dict[str, Decimal]]:
    """The return procedure deployed with handlers not inline, `orders` orders imported
    and the first `applied` of them (all by default) applied for as returns, with no
    handler run yet; the prices by RMA number. Data files go under `root`."""
    from handlers import desk
    from handlers.bench import _order
    from handlers.store import Folders, services_factory

    folders = Folders(root / "data")
    engine = Engine(
        url, settings=Settings(inline_handlers=False), services=services_factory(folders)
    )
    engine.init()
    engine.deploy([PROCESSES], actor="owner")
    today = datetime.now(UTC)
    path = root / "orders.csv"
    rows = [_order(index, declined=False) for index in range(orders)]
    for row in rows:  # delivered five days ago: within the seven days
        delivered = today.date() - timedelta(days=5)
        row["delivered_at"] = delivered.isoformat()
        row["sold_at"] = (delivered - timedelta(days=3)).isoformat()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    desk.import_orders(engine, folders, path, actor="owner")
    prices: dict[str, Decimal] = {}
    for index, row in enumerate(rows[:applied]):
        result = desk.apply(
            engine,
            folders,
            order_number=row["order_number"],
            artwork_ids=[row["artwork_id"]],
            request_type="return",
            reason="no_reason",
            description="Changed my mind; still sealed.",
            actor="cs-ann",
        )
        prices[result.instance.label] = Decimal(row["price"])
        assert index == len(prices) - 1
    return engine, folders, prices
