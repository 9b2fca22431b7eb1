"""SpiffWorkflow's script engine, backed by the restricted evaluator and the engine clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import Any

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _timer_module
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)

from engine.evaluator import Evaluator

_NOW: ContextVar[Callable[[], datetime] | None] = ContextVar("artreturns_now", default=None)


class _EngineDatetime(datetime):
    """`datetime` as seen by SpiffWorkflow's timers: `now()` reads the engine clock."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _EngineDatetime:
        source = _NOW.get()
        current = source() if source is not None else datetime.now(UTC)
        current = current.astimezone(tz) if tz is not None else current.astimezone(UTC)
        if tz is None:
            current = current.replace(tzinfo=None)
        return cls.combine(current.date(), current.timetz())


# SpiffWorkflow's timer module reads `datetime.now(timezone.utc)` and treats naive
# dates as the machine's local zone. Give it the engine clock, and UTC for naive dates.
_timer_module.datetime = _EngineDatetime
_timer_module.LOCALTZ = UTC


@contextmanager
def clock(now: Callable[[], datetime]) -> Iterator[None]:
    """Run the enclosed SpiffWorkflow calls with `now` as the current time."""
    token = _NOW.set(now)
    try:
        yield
    finally:
        _NOW.reset(token)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluate conditions and run scripts through the restricted evaluator."""

    def __init__(self, evaluator: Evaluator) -> None:
        super().__init__({})
        self.evaluator = evaluator

    def evaluate(
        self,
        expression: str,
        context: dict[str, Any],
        external_context: dict[str, Any] | None = None,
    ) -> Any:
        names = dict(external_context or {})
        names.update(context)
        return self.evaluator.evaluate(expression, names)

    def execute(
        self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> bool:
        names = dict(context)
        extra = dict(external_context or {})
        names.update(extra)
        self.evaluator.execute(script, names)
        for key in [k for k in context if k not in names]:
            del context[key]
        for key, value in names.items():
            if key in extra and extra[key] is value:
                continue
            context[key] = value
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> str:
        raise RuntimeError("service tasks are run by the engine, not by the script environment")


class ScriptEngine(PythonScriptEngine):
    """The library's script engine with its service-call path closed.

    Service tasks never reach `call_service` (they stop STARTED and the engine runs the
    handler), so this only guards against a future library change calling it anyway:
    the base implementation would turn every error into `NameError: script`.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        super().__init__(environment=RestrictedEnvironment(evaluator))

    def call_service(self, task: Any, **kwargs: Any) -> str:
        raise RuntimeError(
            f"service task {task.task_spec.bpmn_id} must be run by the engine, not the library"
        )
