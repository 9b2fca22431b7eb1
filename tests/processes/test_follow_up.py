"""processes/follow_up.bpmn: the customer file and the return visit.

Run on its own through the returns desk (the real handlers, a fresh engine per step).
Every path: the return filed with its outcome and the customer's score, an artist
returned again and again sent to the manager, the call back a month later, and each
due time escalating to the supervisor of its lane.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import Desk
from sqlalchemy import select
from support import T0

from handlers.store.tables import customer_files

CS = "cs-ann"
MANAGER = "mgr-max"
EMAIL = "noor.haddad@example.org"
SALE: dict[str, Any] = {
    "order_number": "OG-2026-0301",
    "channel": "online_shop",
    "jurisdiction": "EU",
    "currency": "EUR",
    "sold_at": "2026-10-10",
    "delivered_at": "2026-10-14",
    "payment_method": "card",
    "payer": "Noor Haddad",
    "shipping_charge": "0",
    "customer": {"name": "Noor Haddad", "email": EMAIL, "locale": "en", "address": "Rotterdam"},
    "artworks": [
        {
            "artwork_id": f"PR-{n}",
            "title": f"Harbour Study {n}",
            "artist": "Sem Visser",
            "category": category,
            "price": "800.00",
        }
        for n, category in ((1, "print"), (2, "print"), (3, "painting"))
    ],
}


def start(
    desk: Desk,
    artwork: str = "PR-1",
    *,
    request_type: str = "return",
    exchange_result: str | None = None,
    confirmation: dict[str, Any] | None = None,
) -> str:
    desk.import_orders([SALE])
    return desk.apply(
        "OG-2026-0301",
        [artwork],
        type=request_type,
        reason="not_as_described",
        process="follow_up",
        extra={
            "reason": "not_as_described",
            "request_type": request_type,
            "exchange_result": exchange_result,
            "confirmation": confirmation,
            "dispute_outcome": None,
            "dispute_decision": None,
            "inspection": None,
        },
    )


def filed(desk: Desk, rma: str) -> list[dict[str, Any]]:
    with desk.engine().db.read() as session:
        rows = session.execute(select(customer_files).where(customer_files.c.rma == rma)).mappings()
        return [
            {
                k: row[k]
                for k in (
                    "customer_email",
                    "artist",
                    "category",
                    "reason",
                    "outcome",
                    "satisfaction",
                    "comment",
                )
            }
            for row in rows
        ]


def fired(desk: Desk, rma: str) -> list[str]:
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def timers(desk: Desk, rma: str) -> list[tuple[str, Any]]:
    return [(t.bpmn_id, t.due_at) for t in desk.show(rma).open_tasks if t.kind == "timer"]


def call_back(desk: Desk, rma: str) -> None:
    desk.complete(rma, "call_back", {"reached": True, "note": "Happy with the refund."}, actor=CS)


def test_a_refund_is_filed_and_the_customer_called_back_a_month_later(desk: Desk) -> None:
    rma = start(desk, confirmation={"score": 4, "comment": "Quick and friendly."})

    assert filed(desk, rma) == [
        {
            "customer_email": EMAIL,
            "artist": "Sem Visser",
            "category": "print",
            "reason": "not_as_described",
            "outcome": "refunded",
            "satisfaction": 4,
            "comment": "Quick and friendly.",
        }
    ]
    data = desk.data(rma)
    assert data["outcome"] == "refunded"
    assert data["customer_file"] == {"recorded": True}
    assert data["repeated"] is False
    assert desk.open_steps(rma) == []
    assert timers(desk, rma) == [("month_later", T0 + timedelta(days=30))]

    desk.advance(days=30, minutes=-1)
    assert desk.open_steps(rma) == []
    desk.advance(minutes=2)

    assert fired(desk, rma) == ["month_later"]
    assert desk.open_steps(rma) == ["call_back"]
    assert desk.task(rma, "call_back").role == "customer_service"
    call_back(desk, rma)
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["call_back"]["reached"] is True
    assert desk.completed_steps(rma) == ["update_customer_file", "flag_repeats", "call_back"]


@pytest.mark.parametrize(
    ("request_type", "exchange_result", "outcome"),
    [
        ("return", None, "refunded"),
        ("exchange", "shipped", "exchanged"),
        ("exchange", "unpaid", "exchange_unpaid"),
    ],
)
def test_the_outcome_filed_follows_the_request(
    desk: Desk, request_type: str, exchange_result: str | None, outcome: str
) -> None:
    rma = start(desk, request_type=request_type, exchange_result=exchange_result)

    [entry] = filed(desk, rma)
    assert entry["outcome"] == outcome
    assert (entry["satisfaction"], entry["comment"]) == (None, None)  # no survey answer


def test_an_artist_returned_again_and_again_goes_to_the_manager(desk: Desk) -> None:
    """The third return of Sem Visser in 180 days flags the artist (not the category:
    this one is the only painting)."""
    first = start(desk, "PR-1")
    second = start(desk, "PR-2")
    assert desk.data(first)["repeated"] is False
    # two prints so far: the category is at 2, the artist at 2
    assert desk.data(second)["repeated"] is False

    rma = start(desk, "PR-3")

    data = desk.data(rma)
    assert data["repeated"] is True
    assert data["repeat_flags"] == [{"what": "artist", "value": "Sem Visser", "returns": 3}]
    assert desk.open_steps(rma) == ["review_repeats"]
    assert desk.task(rma, "review_repeats").role == "manager"
    assert timers(desk, rma) == [("review_repeats_due", T0 + timedelta(days=5))]

    desk.advance(days=1)
    desk.complete(
        rma, "review_repeats", {"action": "Ask the artist for edition proofs."}, actor=MANAGER
    )

    # the month is counted from the review
    assert timers(desk, rma) == [("month_later", T0 + timedelta(days=31))]
    desk.advance(days=30, minutes=1)
    assert desk.open_steps(rma) == ["call_back"]
    assert desk.data(rma)["repeat_review"]["action"] == "Ask the artist for edition proofs."


def test_the_review_of_repeated_returns_escalates_after_five_days(desk: Desk) -> None:
    start(desk, "PR-1")
    start(desk, "PR-2")
    rma = start(desk, "PR-3")

    desk.advance(days=5, minutes=-1)
    assert fired(desk, rma) == []
    desk.advance(minutes=2)

    assert fired(desk, rma) == ["review_repeats_due"]
    task = desk.task(rma, "review_repeats")
    assert (task.role, task.escalated_to) == ("manager", "manager_supervisor")
    assert [t.bpmn_id for t in desk.tasks(rma, role="manager_supervisor")] == ["review_repeats"]
    desk.complete(rma, "review_repeats", {"action": "Delist the edition."}, actor=MANAGER)
    assert timers(desk, rma)[0][0] == "month_later"


def test_the_call_back_escalates_after_three_days(desk: Desk) -> None:
    rma = start(desk)
    desk.advance(days=30, minutes=1)
    assert desk.open_steps(rma) == ["call_back"]

    due = desk.task(rma, "call_back").due_at
    # Counted from when the month was up, not from when the timer was seen to be due.
    assert due == desk.now - timedelta(minutes=1) + timedelta(days=3)

    desk.advance(days=3, minutes=-1)
    assert fired(desk, rma) == ["month_later"]
    desk.advance(minutes=2)

    assert fired(desk, rma) == ["month_later", "call_back_due"]
    task = desk.task(rma, "call_back")
    assert (task.role, task.escalated_to) == ("customer_service", "customer_service_supervisor")
    call_back(desk, rma)
    assert desk.status(rma) == "completed"


@pytest.mark.postgres
def test_the_follow_up_on_postgres(pg_desk: Desk) -> None:
    rma = start(pg_desk, confirmation={"score": "5", "comment": "Thank you."})
    assert [e["satisfaction"] for e in filed(pg_desk, rma)] == [5]
    pg_desk.advance(days=30, minutes=1)
    call_back(pg_desk, rma)
    assert pg_desk.status(rma) == "completed"
