"""The benchmark's baseline: a process run in memory by SpiffWorkflow alone.

No persistence, no history, SpiffWorkflow's own script engine, and none of the engine's
corrections to the library: this file imports nothing from the engine, and the
benchmark runs it as a separate program (`python bare.py FILE PROCESS COUNT`) so that
the baseline is the library exactly as shipped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState


class BareRunner:
    """Parse once, then run instances start to finish, completing user tasks in turn."""

    def __init__(self, path: str, process_id: str) -> None:
        parser = SpiffBpmnParser()
        parser.add_bpmn_files([path])
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


def main(argv: list[str]) -> None:
    """Print {"rate": instances per second} for COUNT instances after a warm-up."""
    path, process_id, count = argv[0], argv[1], int(argv[2])
    runner = BareRunner(path, process_id)
    for number in range(max(10, count // 10)):
        runner.run({"answer": number})
    began = time.perf_counter()
    for number in range(count):
        runner.run({"answer": number})
    elapsed = time.perf_counter() - began
    sys.stdout.write(json.dumps({"rate": count / elapsed}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
