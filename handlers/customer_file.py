"""The customer file and the follow-up: what was returned, why, how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import TaskContext
from handlers.common import need, rma_of, services

#: A category or artist returned this often within the window is flagged.
REPEAT_THRESHOLD = 3
REPEAT_WINDOW_DAYS = 180


def update(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Record the return in the customer's file, once.

    Parameters: `rma`, `customer` ({email}), `artwork` ({artist, category}), `reason`,
    `outcome`, `confirmation` (optional: {score 1-5, comment}). Returns `customer_file`
    {recorded}.
    """
    person = need(params, "customer", Mapping)
    artwork = need(params, "artwork", Mapping)
    confirmation = params.get("confirmation") or {}
    score = confirmation.get("score")
    recorded = services(ctx).customers.record(
        key=ctx.idempotency_key,
        customer_email=str(person.get("email") or ""),
        rma=rma_of(params, ctx),
        artist=str(artwork.get("artist") or ""),
        category=str(artwork.get("category") or ""),
        reason=str(need(params, "reason", str)),
        outcome=str(need(params, "outcome", str)),
        satisfaction=int(score) if isinstance(score, int | str) and str(score).isdigit() else None,
        comment=str(confirmation.get("comment")) if confirmation.get("comment") else None,
    )
    return {"customer_file": {"recorded": recorded}}


def flag_repeats(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Flag the artist and category of this return when they are returned again and again.

    Parameters: `artwork` ({artist, category}). Returns `repeat_flags` (a list of
    {what, value, returns}) and `repeated` (true when anything is flagged).
    """
    artwork = need(params, "artwork", Mapping)
    flags = services(ctx).customers.repeats(
        artist=str(artwork.get("artist") or ""),
        category=str(artwork.get("category") or ""),
        days=REPEAT_WINDOW_DAYS,
        threshold=REPEAT_THRESHOLD,
    )
    return {
        "repeat_flags": [{"what": f.what, "value": f.value, "returns": f.returns} for f in flags],
        "repeated": bool(flags),
    }


HANDLERS = {"customer_file.update": update, "customer_file.flag_repeats": flag_repeats}
