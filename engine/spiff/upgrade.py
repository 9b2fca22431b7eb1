"""Instance states written by older SpiffWorkflow releases, brought to today's format.

SpiffWorkflow stamps each serialization with its serializer version (1.2 by 2.0, 1.3 by
3.0, 1.4 by 3.1, 1.5 by 3.2) and ships a migration per step
(`SpiffWorkflow.bpmn.serializer.migration`). Two things keep its own `migrate` from
serving here, so the steps are chained here instead:

* Its chain stops early: a 1.2 state is brought to 1.3 and left there, a 1.3 state to
  1.4, so older states miss the later steps.
* The 1.3 -> 1.4 and 1.4 -> 1.5 steps fail on any state with a running subprocess (a
  NameError in their loop over subprocesses); those two are written again below, the
  same updates applied to the subprocesses too.

The migrations read and rewrite the specs along with the tasks. A state SpiffWorkflow
wrote itself carries its specs; one stored the engine's way (without them) is migrated
with its definition's specs in their place. Either way the specs are then dropped: the
instance runs on its definition's, which must name every step the state names.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from SpiffWorkflow.bpmn.serializer.migration.version_migration import (
    from_version_1_0,
    from_version_1_1,
    from_version_1_2,
)

from engine.errors import ConfigurationError

_MULTI_INSTANCE = ("StandardLoopTask", "SequentialMultiInstanceTask", "ParallelMultiInstanceTask")
_WAITING, _STARTED = 8, 32


def _workflows(dct: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(tasks, task specs) of the top workflow and of each subprocess."""
    yield dct["tasks"], dct["spec"]["task_specs"]
    for sub in dct.get("subprocesses", {}).values():
        yield sub["tasks"], dct["subprocess_specs"][sub["spec"]]["task_specs"]


def _to_1_4(dct: dict[str, Any]) -> None:
    """Multi-instance and loop tasks that were reached are STARTED, not WAITING (1.4)."""
    for tasks, specs in _workflows(dct):
        for task in tasks.values():
            spec = specs.get(task["task_spec"], {})
            if task["state"] == _WAITING and spec.get("typename") in _MULTI_INSTANCE:
                task["state"] = _STARTED


def _to_1_5(dct: dict[str, Any]) -> None:
    """An event-based gateway holds its events; its branches start with none (1.5)."""
    for _tasks, specs in _workflows(dct):
        for spec in specs.values():
            if spec.get("typename") == "EventBasedGateway":
                for name in spec["outputs"]:
                    specs[name]["event_definition"] = {
                        "description": "Default",
                        "name": None,
                        "typename": "NoneEventDefinition",
                    }


#: The version each step reads, the step, and the version it leaves (SpiffWorkflow's
#: steps from 1.0 and 1.1 run the later ones up to 1.3 themselves).
_STEPS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "1.0": (from_version_1_0, "1.3"),
    "1.1": (from_version_1_1, "1.3"),
    "1.2": (from_version_1_2, "1.3"),
    "1.3": (_to_1_4, "1.4"),
    "1.4": (_to_1_5, "1.5"),
}


def upgrade_state(
    dct: dict[str, Any], version: str, target: str, specs_json: Callable[[], str]
) -> dict[str, Any]:
    """`dct` (a state stored by serializer `version`) in serializer `target`'s format.

    `specs_json` gives the definition's specs (as stored), used when the state carries
    none of its own. Raises ConfigurationError for a version no step starts from."""
    if version not in _STEPS:
        raise ConfigurationError(
            f"instance state was stored by serializer {version}; this engine reads "
            f"{target} and can upgrade from {', '.join(sorted(_STEPS))}",
            "Run the SpiffWorkflow version that stored it.",
        )
    if "spec" not in dct:
        dct.update(json.loads(specs_json()))
    while version != target:
        if version not in _STEPS:
            raise ConfigurationError(f"no upgrade of instance state from serializer {version}")
        step, version = _STEPS[version]
        step(dct)
    dct.pop("VERSION", None)  # SpiffWorkflow's steps leave their own mark
    for workflow in (dct, *dct.get("subprocesses", {}).values()):
        workflow["tasks"] = _parents_first(workflow["tasks"], workflow["root"])
    return dct


def _parents_first(tasks: dict[str, Any], root: str) -> dict[str, Any]:
    """The tasks in tree order. Today's format stores a task's data as a change to its
    parent's, and is read in the order written, so a parent must come first; the order
    of an older state's tasks (a JSON object's) says nothing."""
    ordered: dict[str, Any] = {}
    waiting = deque([root])
    while waiting:
        task_id = waiting.popleft()
        if task_id in tasks and task_id not in ordered:
            ordered[task_id] = tasks[task_id]
            waiting.extend(tasks[task_id]["children"])
    ordered.update((k, v) for k, v in tasks.items() if k not in ordered)
    return ordered


def spec_names(dct: dict[str, Any]) -> Iterator[tuple[str | None, str]]:
    """(subprocess spec name or None for the top workflow, task spec name) of each task."""
    for task in dct["tasks"].values():
        yield None, task["task_spec"]
    for sub in dct.get("subprocesses", {}).values():
        for task in sub["tasks"].values():
            yield sub["spec"], task["task_spec"]
