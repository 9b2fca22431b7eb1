"""Service-task handlers shipped with artreturns, one module per area.

Each module exposes a `HANDLERS` mapping of operator names (`area.verb`) to plain
functions `fn(params, ctx) -> dict`. This package merges them into one mapping, which
pyproject.toml publishes under the `artreturns.handlers` entry-point group.

`MODULES` and `HANDLERS` are built on first use (PEP 562): reading `SUMMARY`, or
importing `handlers.desk`, does not import every handler module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

#: The handler modules, in the order their mappings are merged.
MODULE_NAMES = (
    "intake",
    "rma",
    "notify",
    "shipping",
    "inspection",
    "payments",
    "exchange",
    "claims",
    "customer_file",
)

if TYPE_CHECKING:
    MODULES: tuple[ModuleType, ...]
    HANDLERS: Mapping[str, Callable[..., Any]]


def __getattr__(name: str) -> Any:
    if name == "MODULES":
        value: Any = tuple(import_module(f"handlers.{module}") for module in MODULE_NAMES)
    elif name == "HANDLERS":
        value = {
            operator: fn
            for module in globals().get("MODULES") or __getattr__("MODULES")
            for operator, fn in module.HANDLERS.items()
        }
    else:
        raise AttributeError(f"module 'handlers' has no attribute {name!r}")
    globals()[name] = value
    return value


#: What worklists show of each return beside its RMA number (published under the
#: `artreturns.summary` entry-point group): dotted paths into the return's data, a
#: list on the way giving every item's value (both panels of a diptych).
SUMMARY: Mapping[str, str] = {
    "artwork": "artworks.title",
    "customer": "customer.name",
}
