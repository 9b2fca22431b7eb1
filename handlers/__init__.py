"""Service-task handlers shipped with artreturns, one module per area.

Each module exposes a `HANDLERS` mapping of operator names (`area.verb`) to plain
functions `fn(params, ctx) -> dict`. This package merges them into one mapping, which
pyproject.toml publishes under the `artreturns.handlers` entry-point group.
"""

from collections.abc import Callable, Mapping
from typing import Any

from handlers import (
    claims,
    customer_file,
    exchange,
    inspection,
    intake,
    notify,
    payments,
    rma,
    shipping,
)

MODULES = (intake, rma, notify, shipping, inspection, payments, exchange, claims, customer_file)

HANDLERS: Mapping[str, Callable[..., Any]] = {
    operator: fn for module in MODULES for operator, fn in module.HANDLERS.items()
}
