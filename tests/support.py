"""Constants, helpers and test handlers shared by the test modules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import BpmnError, Engine, FixedClock, Registry, TaskContext

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
