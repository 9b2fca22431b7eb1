"""Service-task handlers: the contract, the context they get, and the registry.

A service task in a diagram names an operator (`area.verb`). A handler is a plain
function `fn(params, ctx) -> dict` registered under that name. Registration is
explicit: each handler module exposes a `HANDLERS` mapping, and packages publish
mappings through the `artreturns.handlers` entry-point group, so a third-party
package adds handlers without editing this repository.

A handler may be given a time limit (`timeout`, or `Settings.handler_timeout`): its
call then runs in a thread of its own, and when the limit passes the command stops
waiting for it (`call_within`). A Python thread cannot be killed: the call is
abandoned, not stopped. What it wrote through `ctx.services` is undone (the engine
runs a limited call inside a savepoint) and, once cut off, whatever it tries through
the connection it was given raises instead of reaching the database.
"""

from __future__ import annotations

import contextvars
import difflib
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from engine.errors import ConfigurationError, HandlerFailedError, HandlerNotFoundError

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


def timeout(seconds: float) -> Callable[[F], F]:
    """Declare the longest a handler may run, in seconds: a call still running then
    is cut off and fails with `HandlerTimedOut` (and, after its attempts, becomes an
    incident). Overrides `Settings.handler_timeout` for this handler; the settings'
    per-operator value overrides this one."""
    if not seconds > 0:
        raise ConfigurationError(
            f"a handler's timeout must be a positive number of seconds, not {seconds!r}"
        )

    def declare(handler: F) -> F:
        setattr(handler, "timeout", float(seconds))  # noqa: B010 - as `sample` does
        return handler

    return declare


class HandlerTimedOut(Exception):  # noqa: N818 - reads as what happened, like BpmnError
    """A handler call ran past its time limit and was cut off."""

    def __init__(self, operator: str, seconds: float) -> None:
        super().__init__(f"handler {operator} timed out after {seconds:g} s and was cut off")
        self.operator = operator
        self.seconds = seconds


class HandlerStuckError(HandlerFailedError):
    """A handler cut off by its time limit was inside a database call and did not
    leave it: the command that called it is undone, as the connection is not its own
    any more."""

    def __init__(self, operator: str, seconds: float) -> None:
        super().__init__(
            f"handler {operator} ran past its {seconds:g} s inside a database call; "
            "the command was undone",
            "Set a statement or lock timeout on the database, or look at what the "
            "handler waits for.",
        )
        self.operator = operator


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
    #: The longest a call may run, in seconds, as registered or declared with
    #: `@timeout` (None: the settings decide).
    timeout: float | None = None

    @property
    def summary(self) -> str:
        doc = (getattr(self.handler, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


class Registry:
    """Operators mapped to handlers. Build one per engine; it is not a global."""

    def __init__(self) -> None:
        self._handlers: dict[str, HandlerInfo] = {}

    def register(
        self,
        operator: str,
        handler: Handler | Callable[..., Any],
        source: str = "",
        *,
        timeout: float | None = None,
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
        declared = timeout if timeout is not None else getattr(handler, "timeout", None)
        if declared is not None and not (isinstance(declared, int | float) and declared > 0):
            raise ConfigurationError(
                f"operator '{operator}' has timeout {declared!r}",
                "A handler's timeout is a positive number of seconds.",
            )
        limit = float(declared) if declared is not None else None
        self._handlers[operator] = HandlerInfo(operator, handler, source, limit)

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

    def timeout(self, operator: str) -> float | None:
        """The time limit registered or declared for `operator`, if any."""
        info = self._handlers.get(operator)
        return info.timeout if info is not None else None

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


# -- time limits ----------------------------------------------------------------------

#: Calls cut off whose threads still run (a thread cannot be killed).
_abandoned: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def abandoned_calls() -> int:
    """How many handler calls of this process were cut off and still run."""
    return sum(1 for thread in list(_abandoned) if thread.is_alive())


class Leash:
    """Lends a handler's thread an object (the command's connection) while its call
    is live: every method call goes through a lock and, once the call is cut off,
    raises `HandlerTimedOut` instead of reaching the object. The command's own thread
    takes the lock to cut it off, so it never uses the object at the same time."""

    def __init__(self, target: Any, operator: str, seconds: float) -> None:
        self._target = target
        self._operator = operator
        self._seconds = seconds
        self._lock = threading.Lock()
        self._live = True

    def __getattr__(self, name: str) -> Any:
        if not self._live:
            raise HandlerTimedOut(self._operator, self._seconds)
        value = getattr(self._target, name)
        if not callable(value):
            return value  # an attribute (`dialect`); one taken out is not leashed

        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if not self._live:
                    raise HandlerTimedOut(self._operator, self._seconds)
                return value(*args, **kwargs)

        return guarded

    def cut(self, grace: float) -> bool:
        """Refuse every further call; False when a call in progress did not end within
        `grace` seconds (the handler hangs inside the object: it is not cut off)."""
        if not self._lock.acquire(timeout=grace):
            self._live = False
            return False
        self._live = False
        self._lock.release()
        return True


def call_within(
    handler: Handler | Callable[..., Any],
    params: Mapping[str, Any],
    ctx: TaskContext,
    seconds: float,
) -> Any:
    """Call `handler` in a thread of its own and wait at most `seconds` for it: its
    result, or its exception raised again here, or `HandlerTimedOut` when it is still
    running (the thread is then abandoned: it runs on, as a daemon, until it ends)."""
    outcome: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["result"] = context.run(handler, params, ctx)
        except BaseException as exc:  # handed over to the waiting thread
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(
        target=run, name=f"handler {ctx.operator} {ctx.task_id[:8]}", daemon=True
    )
    thread.start()
    if not done.wait(seconds):
        _abandoned.add(thread)
        raise HandlerTimedOut(ctx.operator, seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
