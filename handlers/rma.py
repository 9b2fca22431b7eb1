"""RMA tickets: opened when a request is accepted for handling, closed with its outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import TaskContext, sample
from handlers.common import HandlerInputError, need, rma_of, services

OUTCOMES = ("open", "declined", "rejected", "lapsed", "closed", "withdrawn")


@sample({"rma_status": "open"})
def open_ticket(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Open the return's RMA ticket (its number was given at intake).

    Parameters: `rma` (defaults to the instance's business key). Returns `rma_status`.
    """
    rma = rma_of(params, ctx)
    if not services(ctx).numbers.set_status(rma, "open"):
        raise HandlerInputError(f"{rma} was never issued; start returns with `artreturns apply`")
    return {"rma_status": "open"}


@sample(lambda params: {"rma_status": params.get("outcome"), "rule": params.get("rule")})
def close_ticket(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Close the RMA ticket with the return's outcome.

    Parameters: `rma`, `outcome` (declined, rejected, lapsed, closed or withdrawn),
    `rule` (optional: the rule or decision that ended it, e.g. CUSTOM-MADE, APPRAISAL).
    Returns `rma_status` and `rule`.
    """
    rma = rma_of(params, ctx)
    outcome = need(params, "outcome", str)
    if outcome not in OUTCOMES:
        raise HandlerInputError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    rule = params.get("rule")
    if rule is not None and not isinstance(rule, str):
        raise HandlerInputError(f"rule must be text, not {type(rule).__name__}")
    if not services(ctx).numbers.set_status(rma, outcome):
        raise HandlerInputError(f"{rma} was never issued")
    return {"rma_status": outcome, "rule": rule or None}


HANDLERS = {"rma.open": open_ticket, "rma.close": close_ticket}
