"""The benchmark's baseline: a process run in memory by SpiffWorkflow alone.

No persistence, no history, SpiffWorkflow's own script engine: the fastest the library
itself can run the process, against which the engine's cost is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState


class BareRunner:
    """Parse once, then run instances start to finish, completing user tasks in turn."""

    def __init__(self, path: Path, process_id: str) -> None:
        parser = SpiffBpmnParser()
        parser.add_bpmn_files([str(path)])
        self._spec = parser.get_spec(process_id)

    def run(self, data: Mapping[str, Any]) -> int:
        """Run one instance to its end; return the number of user tasks completed."""
        workflow = BpmnWorkflow(self._spec)
        workflow.do_engine_steps()
        done = 0
        while not workflow.is_completed():
            ready = workflow.get_tasks(state=TaskState.READY, spec_class=UserTask)
            if not ready:
                raise RuntimeError("the process stopped without a ready user task")
            ready[0].data.update(data)
            ready[0].run()
            workflow.do_engine_steps()
            done += 1
        return done
