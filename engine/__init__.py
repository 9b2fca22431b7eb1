"""artreturns engine: BPMN processes on SpiffWorkflow, persisted through SQLAlchemy.

Nothing in this package knows about art or returns: the flows are diagrams deployed
from `processes/`, and the work is done by handlers registered under operator names.
"""

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
    TaskNotFoundError,
    UnsafeDocumentError,
)
from engine.history import Break, EventKind
from engine.persistence import DEFAULT_DB, Database
from engine.registry import BpmnError, Handler, Registry, TaskContext
from engine.roles import Role, Roles
from engine.runner import Settings
from engine.views import (
    CommandResult,
    DeployView,
    EventView,
    InstanceView,
    ProcessView,
    TaskView,
)

__all__ = [
    "DEFAULT_DB",
    "AmbiguousReferenceError",
    "BpmnError",
    "Break",
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
    "FixedClock",
    "Handler",
    "HandlerFailedError",
    "HandlerNotFoundError",
    "HistoryBrokenError",
    "InputError",
    "InstanceNotFoundError",
    "InstanceView",
    "InvalidStateError",
    "NotFoundError",
    "PermissionDeniedError",
    "PersistenceError",
    "Problem",
    "ProcessError",
    "ProcessValidationError",
    "ProcessView",
    "Registry",
    "Role",
    "Roles",
    "Settings",
    "SystemClock",
    "TaskContext",
    "TaskNotFoundError",
    "TaskView",
    "UnsafeDocumentError",
    "parse_time",
]
