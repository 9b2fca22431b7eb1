"""Serialize specs once per deployed version and instances without their specs.

SpiffWorkflow embeds the whole spec in every serialized instance (two thirds of its
size). Here the spec is written once, when a version is deployed, and an instance's
JSON holds only its own state; on load the cached spec objects are attached again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from types import ModuleType
from typing import Any
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.serializer.helpers.encoder import create_encoder
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SPIFF_SERIALIZER_VERSION
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge

from engine.errors import ConfigurationError
from engine.spiff.specs import new_registry

#: Written beside every stored instance. An instance stored by an older version is
#: brought to this one on loading (engine/spiff/upgrade.py); a newer or unknown version
#: is refused rather than silently misread.
SERIALIZER_VERSION = SPIFF_SERIALIZER_VERSION


@dataclass(frozen=True)
class SpecBundle:
    """A process's parsed spec and the specs of everything it calls."""

    spec: Any
    subprocess_specs: dict[str, Any]


_CURRENT_SPECS: ContextVar[SpecBundle | None] = ContextVar("artreturns_specs", default=None)


class _InstanceConverter(BpmnWorkflowConverter):
    """BpmnWorkflow <-> dict without the specs, which live with the definition version."""

    def to_dict(self, workflow: Any) -> dict[str, Any]:
        dct: dict[str, Any] = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> Any:
        bundle = _CURRENT_SPECS.get()
        if bundle is None:
            raise RuntimeError("instance state restored without its spec bundle")
        workflow = self.target_class(bundle.spec, dict(bundle.subprocess_specs), deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


#: Task ids as text, for the three times each is written in one dump and the next few
#: dumps of the same instances. 8,192 ids (about 2 MB) hold some sixty instances'
#: worth; 65,536 held 16 MB more per process and took a worker some thousands of
#: returns to fill, which the soak saw as memory growing (docs/security.md, "Load").
_uuid_text = lru_cache(maxsize=1 << 13)(str)


class _TaskConverter(TaskConverter):
    """SpiffWorkflow's task converter, producing the same dict with less work: task ids
    are formatted once (a task's id is written three times: as itself, as its parent's
    child and as its children's parent), empty internal data is not walked."""

    def to_dict(self, task: Any) -> dict[str, Any]:
        parent_id = task._parent
        if parent_id is None:
            data, delta = task.data, {}
        else:
            parent_data = task.workflow.tasks[parent_id].data
            own = task.data
            data = {}
            delta = {
                "updates": DeepMerge.get_updated_keys(parent_data, own),
                "deletions": DeepMerge.get_deleted_keys(parent_data, own),
            }
        internal = task.internal_data
        return {
            "id": _uuid_text(task.id),
            "parent": _uuid_text(parent_id) if parent_id is not None else None,
            "children": [_uuid_text(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task._state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.convert(internal) if internal else {},
            "data": data,
            "delta": delta,
        }


def _registry() -> Any:
    registry = new_registry()
    _InstanceConverter(BpmnWorkflow, registry)
    _TaskConverter(Task, registry)
    registry.register(
        Decimal, lambda v: {"value": str(v)}, lambda d: Decimal(d["value"]), typename="Decimal"
    )
    registry.register(
        date,
        lambda v: {"value": v.isoformat()},
        lambda d: date.fromisoformat(d["value"]),
        typename="date",
    )
    return registry


_REGISTRY = _registry()


def registry() -> Any:
    """The converters specs and workflows are stored with (SpiffWorkflow's diffs use
    them to compare specs)."""
    return _REGISTRY


_ENCODER = create_encoder(_REGISTRY)
_SERIALIZER = BpmnWorkflowSerializer(_REGISTRY)


@contextmanager
def _encoding() -> Iterator[None]:
    _REGISTRY._encoder_mode = True
    try:
        yield
    finally:
        _REGISTRY._encoder_mode = False


def dump_specs(bundle: SpecBundle) -> str:
    with _encoding():
        dct = {
            "spec": _REGISTRY.convert(bundle.spec),
            "subprocess_specs": {
                k: _REGISTRY.convert(v) for k, v in bundle.subprocess_specs.items()
            },
        }
        return json.dumps(dct, cls=_ENCODER, sort_keys=True)


def load_specs(text: str) -> SpecBundle:
    dct = json.loads(text)
    return SpecBundle(
        spec=_REGISTRY.restore(dct["spec"]),
        subprocess_specs={k: _REGISTRY.restore(v) for k, v in dct["subprocess_specs"].items()},
    )


# Every command writes its instance's state: orjson does it about ten times faster than
# the json module. (It is not used to read: it reads an integer beyond 64 bits as a
# float.) Dates, times
# and dataclasses are passed to the registry's converters as the json module would pass
# them; a UUID left in process data is written as its text (the canonical form, over
# which digests are taken, already treats it so). What orjson refuses (an integer beyond
# 64 bits, a subclass of a built-in type) is written by the json module instead.
_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _orjson_default(value: Any) -> Any:
    """What SpiffWorkflow's JSON encoder does with a value JSON has no type for."""
    typename = _REGISTRY.typenames.get(type(value))
    if typename is not None:
        return _REGISTRY.convert_to_dict[typename](value)
    if callable(value) or isinstance(value, ModuleType):
        return None
    if isinstance(value, set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dump_workflow(workflow: Any) -> str:
    with _encoding():
        dct = _REGISTRY.convert(workflow)
        try:
            return orjson.dumps(dct, default=_orjson_default, option=_ORJSON_OPTIONS).decode()
        except orjson.JSONEncodeError:
            return json.dumps(dct, cls=_ENCODER)


def load_workflow(text: str, bundle: SpecBundle, serializer_version: str) -> Any:
    dct = json.loads(text)
    if serializer_version != SERIALIZER_VERSION:
        dct = _upgraded(dct, bundle, serializer_version)
    token = _CURRENT_SPECS.set(bundle)
    try:
        return _SERIALIZER.from_dict(dct)
    finally:
        _CURRENT_SPECS.reset(token)


def _upgraded(dct: dict[str, Any], bundle: SpecBundle, version: str) -> dict[str, Any]:
    """A state stored by an older serializer, in today's format, without its specs."""
    from engine.spiff.upgrade import spec_names, upgrade_state

    dct.pop(_SERIALIZER.VERSION_KEY, None)
    dct = upgrade_state(dct, version, SERIALIZER_VERSION, lambda: dump_specs(bundle))
    for sub, name in spec_names(dct):
        spec = bundle.spec if sub is None else bundle.subprocess_specs.get(sub)
        if spec is None or name not in spec.task_specs:
            raise ConfigurationError(
                f"instance state stored by serializer {version} names step '{name}'"
                + (f" of '{sub}'" if sub else "")
                + ", which its process version does not have",
                "Load it with the definition it was started on.",
            )
    dct.pop("spec")
    dct.pop("subprocess_specs", None)
    return dct
