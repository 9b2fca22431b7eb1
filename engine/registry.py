"""Service-task handlers: the contract, the context they get, and the registry.

A service task in a diagram names an operator (`area.verb`). A handler is a plain
function `fn(params, ctx) -> dict` registered under that name. Registration is
explicit: each handler module exposes a `HANDLERS` mapping, and packages publish
mappings through the `artreturns.handlers` entry-point group, so a third-party
package adds handlers without editing this repository.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from engine.errors import ConfigurationError, HandlerNotFoundError

ENTRY_POINT_GROUP = "artreturns.handlers"
OPERATOR_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TaskContext:
    """What a handler knows about the task it runs for.

    `idempotency_key` is the same for every attempt at the same task of the same
    instance: a handler with side effects (a payment, a notice) must use it so that
    running it twice has the effect of running it once.
    """

    instance_id: int
    instance_uid: str
    business_key: str | None
    process_id: str
    process_version: int
    task_id: str
    bpmn_id: str
    operator: str
    idempotency_key: str
    attempt: int
    now: datetime
    actor: str
    logger: logging.Logger = field(repr=False, compare=False)
    #: What the application gives its handlers (the engine passes it through untouched),
    #: bound to the connection of the command that runs the handler.
    services: Any = field(default=None, repr=False, compare=False)


class Handler(Protocol):
    def __call__(self, params: Mapping[str, Any], ctx: TaskContext) -> Mapping[str, Any] | None: ...


def sample(
    value: Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> Callable[[F], F]:
    """Declare what a handler returns when a process is simulated (`artreturns
    simulate`): a fixed result, or a function of the task's parameters that needs no
    context (no database, no clock). A handler without one is stubbed with `{}`."""

    def declare(handler: F) -> F:
        setattr(handler, "sample", value)  # noqa: B010 - a function attribute mypy allows
        return handler

    return declare


class BpmnError(Exception):
    """Raised by a handler to throw a BPMN error event instead of failing.

    An error boundary event on the service task (or an enclosing subprocess) whose
    error code matches catches it; the payload becomes the error's data. When nothing
    catches it, the task fails like any other handler error.
    """

    def __init__(self, code: str, message: str = "", payload: Mapping[str, Any] | None = None):
        super().__init__(message or code)
        self.code = code
        self.payload = dict(payload or {})


@dataclass(frozen=True)
class HandlerInfo:
    operator: str
    handler: Handler
    source: str

    @property
    def summary(self) -> str:
        doc = (getattr(self.handler, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


class Registry:
    """Operators mapped to handlers. Build one per engine; it is not a global."""

    def __init__(self) -> None:
        self._handlers: dict[str, HandlerInfo] = {}

    def register(
        self, operator: str, handler: Handler | Callable[..., Any], source: str = ""
    ) -> None:
        if not OPERATOR_PATTERN.match(operator):
            raise ConfigurationError(
                f"operator name '{operator}' is not of the form area.verb",
                "Use lower-case words separated by a dot, for example payments.refund.",
            )
        existing = self._handlers.get(operator)
        if existing is not None and existing.handler is not handler:
            raise ConfigurationError(
                f"operator '{operator}' is registered twice ({existing.source} and {source})",
                "Remove one of the registrations or give one of them another name.",
            )
        self._handlers[operator] = HandlerInfo(operator, handler, source)

    def register_mapping(
        self, mapping: Mapping[str, Handler | Callable[..., Any]], source: str
    ) -> None:
        for operator, handler in mapping.items():
            self.register(operator, handler, source)

    def get(self, operator: str) -> Handler:
        info = self._handlers.get(operator)
        if info is None:
            raise HandlerNotFoundError(operator, self.suggest(operator))
        return info.handler

    def suggest(self, operator: str) -> str | None:
        matches = difflib.get_close_matches(operator, list(self._handlers), n=1, cutoff=0.6)
        return matches[0] if matches else None

    def __contains__(self, operator: object) -> bool:
        return operator in self._handlers

    def __iter__(self) -> Iterator[HandlerInfo]:
        return iter(sorted(self._handlers.values(), key=lambda info: info.operator))

    def __len__(self) -> int:
        return len(self._handlers)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> Registry:
        """Collect every mapping published under the entry-point group."""
        from importlib.metadata import entry_points  # ~30 ms: only when handlers are needed

        registry = cls()
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                mapping = ep.load()
            except Exception as exc:
                raise ConfigurationError(
                    f"handler package '{ep.name}' ({ep.value}) failed to load: {exc}",
                    "Fix or uninstall the package that provides it.",
                ) from exc
            if not isinstance(mapping, Mapping):
                raise ConfigurationError(
                    f"entry point '{ep.name}' ({ep.value}) is not a mapping of operators",
                    "An artreturns.handlers entry point must name a dict {'area.verb': fn}.",
                )
            registry.register_mapping(mapping, source=ep.value)
        return registry
