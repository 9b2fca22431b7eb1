"""artreturns engine: BPMN processes on SpiffWorkflow, persisted through SQLAlchemy.

Nothing in this package knows about art or returns: the flows are diagrams deployed
from `processes/`, and the work is done by handlers registered under operator names.

Every name below is imported on first use (PEP 562), so that `from engine import
InputError` costs the errors module and not SQLAlchemy, SpiffWorkflow and Alembic: a
command-line call pays only for what its command needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import exports

if TYPE_CHECKING:
    from engine.api import DueResult, Engine
    from engine.clock import Clock, FixedClock, SystemClock, parse_time
    from engine.errors import (
        AmbiguousReferenceError,
        ConcurrencyError,
        ConfigurationError,
        DefinitionNotFoundError,
        EngineError,
        EvaluationTimeoutError,
        ExpressionError,
        FieldProblem,
        FormValidationError,
        HandlerFailedError,
        HandlerNotFoundError,
        HistoryBrokenError,
        InputError,
        InstanceNotFoundError,
        InvalidStateError,
        NotFoundError,
        PermissionDeniedError,
        PersistenceError,
        Problem,
        ProcessError,
        ProcessValidationError,
        ReplayDivergedError,
        StoredStateError,
        TaskNotFoundError,
        UnsafeDocumentError,
    )
    from engine.forms import Choice, Form, FormField
    from engine.history import Break, EventKind
    from engine.jobs import JobOutcome, JobView
    from engine.persistence import DEFAULT_DB, Database
    from engine.registry import BpmnError, Handler, Registry, TaskContext
    from engine.replay import ReplayReport
    from engine.roles import Role, Roles
    from engine.runner import Settings
    from engine.views import (
        CommandResult,
        DeployView,
        EventView,
        FormView,
        InstanceView,
        OperationView,
        ProcessView,
        TaskView,
        UserView,
        WorkItem,
    )

#: Where each public name lives: the module imported when the name is first used.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "engine.api": ("DueResult", "Engine"),
    "engine.clock": ("Clock", "FixedClock", "SystemClock", "parse_time"),
    "engine.errors": (
        "AmbiguousReferenceError",
        "ConcurrencyError",
        "ConfigurationError",
        "DefinitionNotFoundError",
        "EngineError",
        "EvaluationTimeoutError",
        "ExpressionError",
        "FieldProblem",
        "FormValidationError",
        "HandlerFailedError",
        "HandlerNotFoundError",
        "HistoryBrokenError",
        "InputError",
        "InstanceNotFoundError",
        "InvalidStateError",
        "JobOutcome",
        "JobView",
        "NotFoundError",
        "PermissionDeniedError",
        "PersistenceError",
        "Problem",
        "ProcessError",
        "ProcessValidationError",
        "ReplayDivergedError",
        "StoredStateError",
        "TaskNotFoundError",
        "UnsafeDocumentError",
    ),
    "engine.forms": ("Choice", "Form", "FormField"),
    "engine.history": ("Break", "EventKind"),
    "engine.jobs": ("JobOutcome", "JobView"),
    "engine.persistence": ("DEFAULT_DB", "Database"),
    "engine.registry": ("BpmnError", "Handler", "Registry", "TaskContext"),
    "engine.replay": ("ReplayReport",),
    "engine.roles": ("Role", "Roles"),
    "engine.runner": ("Settings",),
    "engine.views": (
        "CommandResult",
        "DeployView",
        "EventView",
        "FormView",
        "InstanceView",
        "OperationView",
        "ProcessView",
        "TaskView",
        "UserView",
        "WorkItem",
    ),
}
__getattr__, __dir__ = exports(__name__, _EXPORTS, globals())


__all__ = [
    "DEFAULT_DB",
    "AmbiguousReferenceError",
    "BpmnError",
    "Break",
    "Choice",
    "Clock",
    "CommandResult",
    "ConcurrencyError",
    "ConfigurationError",
    "Database",
    "DefinitionNotFoundError",
    "DeployView",
    "DueResult",
    "Engine",
    "EngineError",
    "EvaluationTimeoutError",
    "EventKind",
    "EventView",
    "ExpressionError",
    "FieldProblem",
    "FixedClock",
    "Form",
    "FormField",
    "FormValidationError",
    "FormView",
    "Handler",
    "HandlerFailedError",
    "HandlerNotFoundError",
    "HistoryBrokenError",
    "InputError",
    "InstanceNotFoundError",
    "InstanceView",
    "InvalidStateError",
    "JobOutcome",
    "JobView",
    "NotFoundError",
    "OperationView",
    "PermissionDeniedError",
    "PersistenceError",
    "Problem",
    "ProcessError",
    "ProcessValidationError",
    "ProcessView",
    "Registry",
    "ReplayDivergedError",
    "ReplayReport",
    "Role",
    "Roles",
    "Settings",
    "StoredStateError",
    "SystemClock",
    "TaskContext",
    "TaskNotFoundError",
    "TaskView",
    "UnsafeDocumentError",
    "UserView",
    "WorkItem",
    "parse_time",
]
