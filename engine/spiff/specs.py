"""Our task-spec classes, the parser that uses them, and the serializer that knows them.

Two deliberate departures from SpiffWorkflow's own classes:

* A service task does not call its handler inside the library. It stops in the STARTED
  state and the engine calls the handler itself (inline or from a worker), records the
  result in the history and then completes the task. That owns the call path that
  `PythonScriptEngine.call_service` would otherwise hide behind a NameError, makes
  handler results replayable, and lets a service task be queued as a job.
* A plain `bpmn:task` passes straight through, as modelers expect, instead of waiting
  for a person like a manual task.
"""

from __future__ import annotations

from typing import Any, ClassVar

from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser, SpiffTaskParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import (
    ServiceTaskConverter,
    SpiffBpmnTaskConverter,
)
from SpiffWorkflow.spiff.specs.defaults import NoneTask, ServiceTask


class ExternalServiceTask(ServiceTask):
    """A service task whose handler the engine runs outside the library."""

    def _execute(self, task: Any) -> None:
        # Returning None leaves the task STARTED; its branch waits for the engine.
        return None


class PassThroughTask(NoneTask):
    """A `bpmn:task` with no type: completes as soon as it is reached."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.manual = False


class Parser(SpiffBpmnParser):
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[Any, Any]]] = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ServiceTaskParser, ExternalServiceTask),
        full_tag("task"): (SpiffTaskParser, PassThroughTask),
    }

    def __init__(self) -> None:
        super().__init__(validator=VALIDATOR)


def _serializer_config() -> dict[Any, Any]:
    config = dict(SPIFF_CONFIG)
    config[ExternalServiceTask] = ServiceTaskConverter
    config[PassThroughTask] = SpiffBpmnTaskConverter
    return config


def new_registry() -> Any:
    """A serializer registry for our spec classes (data types are added by callers)."""
    return BpmnWorkflowSerializer.configure(_serializer_config())
