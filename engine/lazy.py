"""Names a package exports but imports only when first used (PEP 562).

`artreturns --help` and `artreturns tasks` must not pay for SpiffWorkflow, Alembic or
the ORM they do not use; a package lists where each of its names lives, and this module
gives it the `__getattr__` and `__dir__` that import a name's module on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any


def exports(
    package: str, where: Mapping[str, tuple[str, ...]], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: `where` maps each module to the names
    it provides; a name, once imported, is kept in the package's `namespace`."""
    module_of = {name: module for module, names in where.items() for name in names}

    def get(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def listing() -> list[str]:
        return sorted({*namespace, *module_of})

    return get, listing
