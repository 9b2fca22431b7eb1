"""Every exception the engine raises on purpose.

`EngineError` carries a one-line message and a hint that tells the user what to do next.
Only the command line turns these into output and exit codes; everything else raises.
"""

from __future__ import annotations

from dataclasses import dataclass


class EngineError(Exception):
    """An expected failure: the message says what went wrong, the hint what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(EngineError):
    """Input given on the command line or through the API is malformed."""

    exit_code = 2


class ConfigurationError(EngineError):
    """The engine cannot start: bad database URL, missing schema, bad settings."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a diagram, located as precisely as the source allows."""

    message: str
    file: str | None = None
    element: str | None = None
    line: int | None = None

    def location(self) -> str:
        parts = [self.file or "<input>"]
        if self.line:
            parts[0] += f":{self.line}"
        if self.element:
            parts.append(self.element)
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


class ProcessValidationError(EngineError):
    """A diagram failed validation; nothing was deployed."""

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        if not problems:
            raise ValueError("ProcessValidationError needs at least one problem")
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{first}{more}",
            hint or "Fix the diagram and run the command again; nothing was deployed.",
        )

    @property
    def file(self) -> str | None:
        return self.problems[0].file

    @property
    def element(self) -> str | None:
        return self.problems[0].element

    @property
    def line(self) -> int | None:
        return self.problems[0].line


class UnsafeDocumentError(ProcessValidationError):
    """An XML document uses a construct that is refused outright (DOCTYPE, entities)."""


class ExpressionError(EngineError):
    """An expression or script in a diagram was refused or failed while evaluating."""

    def __init__(self, message: str, expression: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.expression = expression


class EvaluationTimeoutError(ExpressionError):
    """An expression ran longer than the evaluator allows."""


class HandlerNotFoundError(EngineError):
    """A service task names an operator that no handler provides."""

    def __init__(self, operator: str, suggestion: str | None = None) -> None:
        hint = (
            f"Did you mean '{suggestion}'?"
            if suggestion
            else "Run `artreturns handlers` to list the operators that are available."
        )
        super().__init__(f"no handler provides the operator '{operator}'", hint)
        self.operator = operator
        self.suggestion = suggestion


class HandlerFailedError(EngineError):
    """A handler raised while running a service task; the task is kept for retry."""


class NotFoundError(EngineError):
    """Something named on the command line does not exist."""


class DefinitionNotFoundError(NotFoundError):
    pass


class InstanceNotFoundError(NotFoundError):
    pass


class TaskNotFoundError(NotFoundError):
    pass


class AmbiguousReferenceError(InputError):
    """A short id or name matches more than one thing."""


class InvalidStateError(EngineError):
    """The command does not apply to the thing in its current state."""


class ProcessError(EngineError):
    """The process itself failed while running (a condition or script raised)."""

    def __init__(self, message: str, hint: str | None = None, element: str | None = None) -> None:
        super().__init__(message, hint)
        self.element = element


class ConcurrencyError(EngineError):
    """Another command changed the same instance at the same time; this one was undone."""

    exit_code = 3


class PersistenceError(EngineError):
    """The database refused an operation."""


class HistoryBrokenError(EngineError):
    """A recomputed hash chain does not match what is stored."""

    exit_code = 5


class StoredStateError(EngineError):
    """An instance's stored state cannot be read: damaged, or written in a form this
    version cannot load. Its history may still hold (replay rebuilds from it)."""

    exit_code = 5


class ReplayDivergedError(EngineError):
    """Replaying an instance's history did not rebuild the states it recorded."""

    exit_code = 5


class PermissionDeniedError(EngineError):
    """The acting user may not do this."""

    exit_code = 4


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with the data given for a user task's form."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class FormValidationError(EngineError):
    """The data given for a user task does not fit its form; nothing was saved."""

    def __init__(
        self, task: str, problems: list[FieldProblem], hint: str | None = None, *, lead: str = ""
    ) -> None:
        if not problems:
            raise ValueError("FormValidationError needs at least one problem")
        self.task = task
        self.problems = problems
        self.lead = lead or f"the data for '{task}' does not fit its form"
        super().__init__(
            f"{self.lead}: " + "; ".join(str(p) for p in problems),
            hint or "Nothing was saved. Correct the fields named and run the command again.",
        )
