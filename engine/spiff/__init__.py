"""The only package that imports SpiffWorkflow.

Everything the engine needs from the library goes through these names: compiling
diagrams into specs, storing specs and instance state, and running an instance one
transition at a time.

The names are imported on first use (PEP 562): running an instance needs the runtime
and the serializer, not the compiler with its BPMN parser (which only deploy and
validate use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import exports
from engine.spiff import patches  # noqa: F401 - applied on import

if TYPE_CHECKING:
    from engine.spiff.compiler import (
        Compilation,
        CompiledProcess,
        Element,
        Expression,
        SourceFile,
        compile_sources,
    )
    from engine.spiff.runtime import OpenTask, Run, ServiceCall, TaskRef
    from engine.spiff.serialization import SERIALIZER_VERSION, SpecBundle, load_specs

_EXPORTS: dict[str, tuple[str, ...]] = {
    "engine.spiff.compiler": (
        "Compilation",
        "CompiledProcess",
        "Element",
        "Expression",
        "SourceFile",
        "compile_sources",
    ),
    "engine.spiff.runtime": ("OpenTask", "Run", "ServiceCall", "TaskRef"),
    "engine.spiff.serialization": ("SERIALIZER_VERSION", "SpecBundle", "load_specs"),
}
__getattr__, __dir__ = exports(__name__, _EXPORTS, globals())


__all__ = [
    "SERIALIZER_VERSION",
    "Compilation",
    "CompiledProcess",
    "Element",
    "Expression",
    "OpenTask",
    "Run",
    "ServiceCall",
    "SourceFile",
    "SpecBundle",
    "TaskRef",
    "compile_sources",
    "load_specs",
]
