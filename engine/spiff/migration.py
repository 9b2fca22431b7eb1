"""Moving a running workflow to another version of its process, where that is safe.

SpiffWorkflow aligns the old version's task specs with the new one's (by BPMN id, then
by structure) and tells, for each task of a workflow, whether its spec was removed or
changed. A move is safe when every task that ran or waits (completed, ready, started,
waiting, failed) still exists in the new version, and no task that already ran (or is
running) changed: the new version then only decides what comes next. A task that waits
and changed (its lane, its form, ...) moves with the change, which the plan names.

The move re-predicts what follows each ready task under the new version; waiting tasks
(timers, message catches) keep their state and their due times, so deadlines already
running are not restarted. Called processes that have not started yet run the new
version's; those running move under the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.util.task import TaskState

from engine.spiff.serialization import SpecBundle, registry

#: Tasks that ran or wait: they must all exist in the new version.
_LIVE_OR_DONE = (
    TaskState.COMPLETED
    | TaskState.READY
    | TaskState.STARTED
    | TaskState.WAITING
    | TaskState.ERROR
    | TaskState.CANCELLED
)
#: Tasks that ran or are running: they must not change.
_RAN = TaskState.COMPLETED | TaskState.STARTED | TaskState.ERROR

#: What a changed spec attribute means to a process owner.
_ATTRIBUTES = {
    "typename": "its kind",
    "bpmn_name": "its name",
    "lane": "its lane",
    "outputs": "what follows it",
    "inputs": "what leads to it",
    "extensions": "its properties or form",
    "cond_task_specs": "its conditions",
    "default_task_spec": "its default flow",
    "decision_table": "its decision table",
    "event_definition": "its event (timer or message)",
    "operation_name": "its operator",
    "operation_params": "its parameters",
    "result_variable": "its result variable",
    "script": "its script",
    "prescript": "its pre-script",
    "postscript": "its post-script",
    "data_input_associations": "its inputs",
    "data_output_associations": "its outputs",
}


@dataclass
class Plan:
    """Whether a workflow can move, why not, and what moving changes."""

    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: SpiffWorkflow's diffs: the top workflow's, and each subprocess's by id.
    diffs: tuple[Any, dict[Any, Any]] | None = None

    @property
    def safe(self) -> bool:
        return not self.reasons


def plan(workflow: Any, bundle: SpecBundle, version: int) -> Plan:
    """What moving `workflow` to `bundle` (version `version`) would do."""
    top, subs = diff_workflow(registry(), workflow, bundle.spec, bundle.subprocess_specs)
    found = Plan(diffs=(top, subs))
    for sub_id, sub_diff in [(None, top), *subs.items()]:
        if sub_diff is None:
            sub = workflow.subprocesses[sub_id]
            found.reasons.append(
                f"it runs the called process '{sub.spec.name}', which version {version} "
                "does not call"
            )
            continue
        for task in sub_diff.removed:
            if task.state & _LIVE_OR_DONE:
                found.reasons.append(
                    f"step {_name(task)} ({_state(task)}) is not in version {version}"
                )
        for task in sub_diff.changed:
            what = _changes(sub_diff, task)
            if task.state & _RAN:
                found.reasons.append(
                    f"step {_name(task)} already ran and version {version} changes {what}"
                )
            elif task.state & (TaskState.READY | TaskState.WAITING):
                found.notes.append(f"step {_name(task)} ({_state(task)}) changes {what}")
    return found


def migrate(workflow: Any, bundle: SpecBundle, found: Plan) -> None:
    """Move `workflow` to `bundle` as `found` (a safe plan) says."""
    assert found.safe
    assert found.diffs is not None
    top, subs = found.diffs
    migrate_workflow(top, workflow, bundle.spec, reset_mask=TaskState.READY)
    for sub_id, sub_diff in subs.items():
        sub = workflow.subprocesses[sub_id]
        migrate_workflow(
            sub_diff, sub, bundle.subprocess_specs[sub.spec.name], reset_mask=TaskState.READY
        )
    workflow.subprocess_specs = dict(bundle.subprocess_specs)


def _changes(diff: Any, task: Any) -> str:
    spec = task.task_spec
    for original, changed in _comparisons(diff).items():
        if original is spec:
            names = sorted({_ATTRIBUTES.get(a, a.replace("_", " ")) for a in changed})
            return ", ".join(names)
    return "it"


def _comparisons(diff: Any) -> dict[Any, list[str]]:
    """The changed attributes per old spec (the WorkflowDiff keeps only the tasks)."""
    changed: dict[Any, list[str]] = {}
    for task in diff.changed:
        spec = task.task_spec
        new = diff.alignment.get(task)
        if new is None:
            continue
        old_dict, new_dict = registry().convert(spec), registry().convert(new)
        changed[spec] = [k for k, v in old_dict.items() if new_dict.get(k) != v] or ["typename"]
    return changed


def _name(task: Any) -> str:
    spec = task.task_spec
    return f"'{spec.bpmn_name or spec.bpmn_id or spec.name}' [{spec.bpmn_id or spec.name}]"


def _state(task: Any) -> str:
    return str(TaskState.get_name(task.state)).lower()
