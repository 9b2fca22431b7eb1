"""The only package that imports SpiffWorkflow.

Everything the engine needs from the library goes through these names: compiling
diagrams into specs, storing specs and instance state, and running an instance one
transition at a time.
"""

from engine.spiff import patches  # noqa: F401 - applied on import
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
