"""Notices to customers: rendered from the templates, kept in the outbox, sent once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from engine.registry import TaskContext, sample
from handlers.common import HOUSE, HandlerInputError, need, rma_of, services


def _notice_as_sent(params: Mapping[str, Any]) -> dict[str, Any]:
    person = params.get("customer") or {}
    locale = str(person.get("locale") or "") if isinstance(person, Mapping) else ""
    return {"notice": params.get("notice"), "locale": locale, "subject": ""}


@sample(_notice_as_sent)
def customer(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Send the customer a notice, in their language, once.

    Parameters: `notice` (the template: received, declined, return_instructions, ...),
    `customer` ({name, email, locale}), `request` or `order` (for the order number),
    `artwork` ({title, artist}), `details` (an object with the fields that notice
    needs, such as `policy_basis` or `amount`) and `due_in_days` (optional: date fields
    worked out from today, e.g. {"reply_by": 14}). Returns `notice`, `locale`, `subject`.
    """
    notice = need(params, "notice", str)
    person = need(params, "customer", Mapping)
    email = str(person.get("email") or "")
    if "@" not in email:
        raise HandlerInputError("the customer has no e-mail address to send a notice to")
    artwork = params.get("artwork") or {}
    order_number = (params.get("request") or {}).get("order_number") or (
        params.get("order") or {}
    ).get("order_number")
    details = dict(params.get("details") or {})
    due = params.get("due_in_days") or {}
    if not isinstance(due, Mapping) or not all(isinstance(d, int) for d in due.values()):
        raise HandlerInputError("parameter 'due_in_days' must map field names to days")
    for name, days in due.items():
        details[name] = (ctx.now + timedelta(days=days)).date().isoformat()
    rma = rma_of(params, ctx)
    context = {
        "customer": {"name": person.get("name")},
        "rma": rma,
        "order_number": order_number or None,
        "artwork": (
            {"title": artwork.get("title"), "artist": artwork.get("artist")} if artwork else None
        ),
        "house": {"name": HOUSE["name"], "email": HOUSE["email"], "phone": HOUSE["phone"]},
        **details,
    }
    sent = services(ctx).outbox.send(
        key=ctx.idempotency_key,
        rma=rma,
        notice=notice,
        locale=str(person.get("locale") or ""),
        recipient=email,
        context=context,
    )
    return {"notice": sent.notice, "locale": sent.locale, "subject": sent.subject}


HANDLERS = {"notify.customer": customer}
