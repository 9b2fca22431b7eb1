"""Small things every handler module shares: reading parameters, the house, dates."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from engine.registry import TaskContext
from handlers.store import Services

#: Who the notices come from and where returns are sent; a deployment sets these.
HOUSE = {
    "name": os.environ.get("ARTRETURNS_HOUSE_NAME", "ArtReturns Gallery"),
    "email": os.environ.get("ARTRETURNS_HOUSE_EMAIL", "returns@artreturns.example"),
    "phone": os.environ.get("ARTRETURNS_HOUSE_PHONE", "+852 0000 0000"),
    "address": os.environ.get(
        "ARTRETURNS_HOUSE_ADDRESS",
        "ArtReturns Gallery, Returns Desk\n1 Harbour Road, Wan Chai\nHong Kong",
    ),
}


class HandlerInputError(ValueError):
    """A parameter a diagram passed is missing or has the wrong shape."""


def services(ctx: TaskContext) -> Services:
    found = ctx.services
    if not isinstance(found, Services):
        raise HandlerInputError(
            "this handler needs the return procedure's services; run it through the "
            "artreturns command, which provides them"
        )
    return found


def need(params: Mapping[str, Any], name: str, kind: type | tuple[type, ...] = object) -> Any:
    """A required parameter of the given type."""
    if name not in params or params[name] is None:
        raise HandlerInputError(f"parameter '{name}' is missing")
    value = params[name]
    if not isinstance(value, kind):
        wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise HandlerInputError(f"parameter '{name}' must be {wanted}, not {type(value).__name__}")
    return value


def day(value: Any) -> date:
    """An ISO date or date-time (as text, date or datetime) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return datetime.fromisoformat(text).date()
    raise HandlerInputError(f"{value!r} is not a date")


def rma_of(params: Mapping[str, Any], ctx: TaskContext) -> str:
    """The return's number: the `rma` parameter, else the instance's business key."""
    value = params.get("rma") or ctx.business_key
    if not isinstance(value, str) or not value:
        raise HandlerInputError("parameter 'rma' is missing")
    return value
