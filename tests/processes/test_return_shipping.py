"""processes/return_shipping.bpmn: getting the returned work back to the house.

Run on its own through the returns desk (the real handlers, a fresh engine per step):
the customer is instructed (with a prepaid label when the house pays), reminded after
5 days, the request lapses after 14 days without a shipment; logistics chases a missing
or refused tracking number (three times at most), the parcel is followed (20 updates at
most) and traced when it is reported lost or silent for 30 days, until the work is
received.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import Desk
from sqlalchemy import select
from support import T0

from engine import InvalidStateError
from engine.views import CommandResult
from handlers.store.tables import outbox, shipments

LOGISTICS = "log-leo"
#: While the parcel travels: the work's arrival, or news of the parcel (a boundary event).
AWAITING_NEWS = ["parcel_update", "work_received"]
OTHER_LOGISTICS = "log-lia"
HOUSE_CARRIER = "ArtReturns Fine Art Logistics"
ORDERS: list[dict[str, Any]] = [
    {
        "order_number": "WS-2026-0101",
        "channel": "online_shop",
        "jurisdiction": "CN",
        "currency": "CNY",
        "sold_at": "2026-10-20",
        "delivered_at": "2026-10-27",
        "payment_method": "alipay",
        "payer": "Wang Fang",
        "shipping_charge": "0",
        "customer": {
            "name": "Wang Fang",
            "email": "wang.fang@example.cn",
            "locale": "en",
            "address": "88 Nanjing Road, Shanghai",
        },
        "artworks": [
            {
                "artwork_id": "PR-0101",
                "title": "Lotus Pond, giclee",
                "artist": "Lin Qiu",
                "category": "print",
                "price": "1200.00",
                "condition": {"grade": "excellent", "notes": "sealed"},
            },
            {
                "artwork_id": "BR-0102",
                "title": "Crane in Flight",
                "artist": "Zhou Ming",
                "category": "sculpture",
                "price": "180000.00",
                "condition": {"grade": "excellent", "notes": "bronze on a stone base"},
            },
        ],
    },
    {
        "order_number": "MK-2026-0611",
        "channel": "marketplace",
        "jurisdiction": "EU",
        "currency": "EUR",
        "sold_at": "2026-10-26",
        "delivered_at": "2026-10-31",
        "payment_method": "card",
        "payer": "Lena Vogel",
        "shipping_charge": "25.00",
        "customer": {
            "name": "Lena Vogel",
            "email": "lena.vogel@example.org",
            "locale": "de-DE",
            "address": "Lindenstrasse 4, 10969 Berlin",
        },
        "artworks": [
            {
                "artwork_id": "WC-0611",
                "title": "Harbour at Dusk",
                "artist": "Marta Keller",
                "category": "painting",
                "price": "2200.00",
                "condition": {"grade": "excellent", "notes": "framed, glazed"},
            }
        ],
    },
]


# -- helpers -------------------------------------------------------------------------------


def start(desk: Desk, *, seller_pays: bool, sculpture: bool = False) -> str:
    """Start return_shipping for the print (CNY 1,200) or the bronze (CNY 180,000) when the
    buyer pays, or for the framed watercolour (EUR 2,200) when the house pays."""
    desk.import_orders(ORDERS)
    if seller_pays:
        order, work, amount, currency = "MK-2026-0611", "WC-0611", "2200.00", "EUR"
    elif sculpture:
        order, work, amount, currency = "WS-2026-0101", "BR-0102", "180000.00", "CNY"
    else:
        order, work, amount, currency = "WS-2026-0101", "PR-0101", "1200.00", "CNY"
    return desk.apply(
        order,
        [work],
        reason="transit_damage" if seller_pays else "no_reason",
        process="return_shipping",
        extra={"seller_pays_return": seller_pays, "amount": amount, "currency": currency},
    )


def ok(result: CommandResult) -> CommandResult:
    assert result.failures == [], result.failures
    return result


def ship(desk: Desk, rma: str, carrier: str = "SF Express", number: str = "SF1234567890") -> None:
    ok(desk.message(rma, "return_shipped", {"carrier": carrier, "tracking_number": number}))


def update(desk: Desk, rma: str, status: str = "in_transit", note: str = "hub scan") -> None:
    ok(desk.message(rma, "parcel_update", {"status": status, "note": note}, actor="carrier-feed"))


def bodies(desk: Desk, rma: str) -> dict[str, str]:
    with desk.engine().db.read() as session:
        rows = session.execute(
            select(outbox.c.notice, outbox.c.body).where(outbox.c.rma == rma)
        ).all()
    return {row.notice: row.body for row in rows}


def tracking_events(desk: Desk, rma: str) -> list[str]:
    with desk.engine().db.read() as session:
        [row] = session.execute(select(shipments).where(shipments.c.rma == rma)).mappings().all()
    return [event["status"] for event in row["events"]]


def fired(desk: Desk, rma: str) -> list[str]:
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def errors(desk: Desk, rma: str) -> list[str]:
    return [e.data["code"] for e in desk.history(rma) if e.kind == "error_thrown"]


def waits_for(desk: Desk, rma: str) -> list[str]:
    """bpmn ids of the message catches (receive tasks, boundary events) it waits at."""
    return sorted(t.bpmn_id for t in desk.show(rma).open_tasks if t.kind == "message")


# -- instructions ----------------------------------------------------------------------------


def test_when_the_house_pays_the_instructions_carry_a_prepaid_label(desk: Desk) -> None:
    rma = start(desk, seller_pays=True)

    shipping = desk.data(rma)["shipping"]
    assert shipping["seller_pays"] is True
    assert shipping["carrier"] == HOUSE_CARRIER
    assert shipping["tracking_number"].startswith("AR")
    assert shipping["ship_by"] == (T0 + timedelta(days=14)).date().isoformat()
    assert shipping["fine_art_packing"] is False  # EUR 2,200 is below EUR 6,500
    assert desk.notices(rma) == ["return_instructions"]
    body = bodies(desk, rma)["return_instructions"]
    assert shipping["tracking_number"] in body
    assert "The return shipping is on us" in body
    assert "16 November 2026" in body
    assert "Packing a valuable work" not in body
    assert desk.tasks(rma) == []
    assert waits_for(desk, rma) == ["work_shipped"]
    assert desk.completed_steps(rma) == ["work_out_shipping", "send_instructions"]


def test_with_a_prepaid_label_the_shipment_needs_no_tracking_number_from_anyone(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=True)
    label = desk.data(rma)["shipping"]["tracking_number"]
    desk.advance(days=2)

    ok(desk.message(rma, "return_shipped", {}))

    data = desk.data(rma)
    assert data["shipment"] == {
        "carrier": HOUSE_CARRIER,
        "tracking_number": label,
        "status": "shipped",
    }
    assert data["parcel_updates"] == 0
    assert desk.tasks(rma) == []
    assert waits_for(desk, rma) == AWAITING_NEWS
    assert tracking_events(desk, rma) == ["label_issued", "shipped"]
    assert errors(desk, rma) == []


def test_when_the_buyer_pays_the_instructions_ask_for_a_tracked_shipment(desk: Desk) -> None:
    rma = start(desk, seller_pays=False, sculpture=True)

    shipping = desk.data(rma)["shipping"]
    assert shipping["seller_pays"] is False
    assert shipping["carrier"] is None
    assert shipping["tracking_number"] is None
    assert shipping["fine_art_packing"] is True  # CNY 180,000 is above CNY 50,000
    body = bodies(desk, rma)["return_instructions"]
    assert "the postage is at your expense" in body
    assert "Packing a valuable work" in body
    assert "Crane in Flight" in body

    ship(desk, rma, carrier="SF Express", number="SF1234567890")

    assert desk.data(rma)["shipment"] == {
        "carrier": "SF Express",
        "tracking_number": "SF1234567890",
        "status": "shipped",
    }
    assert waits_for(desk, rma) == AWAITING_NEWS
    assert tracking_events(desk, rma) == ["shipped"]
    assert desk.notices(rma) == ["return_instructions"]


# -- the missing tracking number ------------------------------------------------------------


def test_a_shipment_without_a_tracking_number_goes_to_logistics(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)

    ok(desk.message(rma, "return_shipped", {"carrier": "SF Express"}))

    assert errors(desk, rma) == ["tracking_number_refused"]
    assert desk.data(rma)["tracking_refusal"] == {"reason": "The shipment has no tracking number."}
    task = desk.task(rma, "get_tracking_number")
    assert task.role == "logistics"
    assert task.due_at is not None
    assert task.due_at == desk.now + timedelta(days=2)
    assert "shipment" not in desk.data(rma)

    desk.complete(
        rma,
        "get_tracking_number",
        {"carrier": "SF Express", "tracking_number": "SF9988776655"},
        actor=LOGISTICS,
    )

    data = desk.data(rma)
    assert data["tracking_attempts"] == 1
    assert data["tracking_refusal"] is None
    assert data["shipment"]["tracking_number"] == "SF9988776655"
    assert data["shipment"]["status"] == "shipped"
    assert desk.tasks(rma) == []
    assert waits_for(desk, rma) == AWAITING_NEWS
    assert desk.completed_steps(rma) == [
        "work_out_shipping",
        "send_instructions",
        "get_tracking_number",
        "register_shipment",
    ]


def test_three_refused_tracking_numbers_and_the_request_lapses(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)
    ok(desk.message(rma, "return_shipped", {"carrier": "SF Express", "tracking_number": " "}))

    for attempt in (1, 2, 3):
        assert desk.status(rma) == "running"
        desk.complete(
            rma,
            "get_tracking_number",
            {"carrier": "SF Express", "tracking_number": "123"},
            actor=LOGISTICS,
        )
        assert desk.data(rma)["tracking_attempts"] == attempt

    assert errors(desk, rma) == ["tracking_number_refused"] * 4
    assert desk.status(rma) == "completed"
    data = desk.data(rma)
    assert data["shipping_result"] == "lapsed"
    assert "shipment" not in data
    assert desk.notices(rma) == ["return_instructions", "lapsed"]
    assert "has lapsed" in bodies(desk, rma)["lapsed"]
    assert desk.tasks(rma) == []


def test_a_number_that_is_not_a_tracking_number_goes_to_logistics_with_the_reason(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=False)

    ok(desk.message(rma, "return_shipped", {"carrier": "SF Express", "tracking_number": "123"}))

    assert errors(desk, rma) == ["tracking_number_refused"]
    reason = desk.data(rma)["tracking_refusal"]["reason"]
    assert reason.startswith("'123' is not a tracking number: a tracking number has 6 to 40")
    assert desk.task(rma, "get_tracking_number").role == "logistics"
    assert "shipment" not in desk.data(rma)

    desk.complete(
        rma,
        "get_tracking_number",
        {"carrier": "SF Express", "tracking_number": "sf 1234 5678 90"},
        actor=LOGISTICS,
    )
    assert desk.data(rma)["shipment"] == {
        "carrier": "SF Express",
        "tracking_number": "SF1234567890",
        "status": "shipped",
    }
    assert waits_for(desk, rma) == AWAITING_NEWS


def test_a_tracking_number_another_return_uses_is_refused_with_the_return_named(
    desk: Desk,
) -> None:
    first = start(desk, seller_pays=False)
    second = desk.apply(
        "WS-2026-0101",
        ["BR-0102"],
        process="return_shipping",
        extra={"seller_pays_return": False, "amount": "180000.00", "currency": "CNY"},
    )
    ship(desk, first, number="SF1234567890")

    ok(desk.message(second, "return_shipped", {"carrier": "SF", "tracking_number": "SF1234567890"}))

    assert errors(desk, second) == ["tracking_number_refused"]
    assert desk.data(second)["tracking_refusal"] == {
        "reason": f"Tracking number SF1234567890 is already used by {first}."
    }
    assert desk.open_steps(second) == ["get_tracking_number"]
    assert desk.show(second).incident_count == 0
    assert tracking_events(desk, first) == ["shipped"]

    for attempt in (1, 2):  # a refused number counts as an attempt like a missing one
        desk.complete(
            second,
            "get_tracking_number",
            {"carrier": "SF", "tracking_number": "SF1234567890"},
            actor=LOGISTICS,
        )
        assert desk.data(second)["tracking_attempts"] == attempt
    desk.complete(
        second,
        "get_tracking_number",
        {"carrier": "SF Express", "tracking_number": "SF7777000011"},
        actor=LOGISTICS,
    )
    assert desk.data(second)["shipment"]["tracking_number"] == "SF7777000011"
    assert errors(desk, second) == ["tracking_number_refused"] * 3


def test_the_prepaid_label_counts_however_its_number_is_written(desk: Desk) -> None:
    rma = start(desk, seller_pays=True)
    label = desk.data(rma)["shipping"]["tracking_number"]
    written = f" {label[:6].lower()} {label[6:]} "

    ok(desk.message(rma, "return_shipped", {"tracking_number": written}))

    assert errors(desk, rma) == []
    assert desk.data(rma)["shipment"] == {
        "carrier": HOUSE_CARRIER,
        "tracking_number": label,
        "status": "shipped",
    }
    assert tracking_events(desk, rma) == ["label_issued", "shipped"]


def test_a_customer_who_ships_another_way_is_not_recorded_with_the_house_carrier(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=True)

    ok(desk.message(rma, "return_shipped", {"tracking_number": "SF5550001111"}))

    assert desk.data(rma)["shipment"] == {
        "carrier": "unknown",
        "tracking_number": "SF5550001111",
        "status": "shipped",
    }


# -- deadlines -------------------------------------------------------------------------------


def test_after_five_days_the_customer_is_reminded_once_and_the_process_keeps_waiting(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=False)

    desk.advance(days=4, hours=23)
    assert desk.notices(rma) == ["return_instructions"]

    desk.advance(hours=2)
    assert fired(desk, rma) == ["no_shipment_5_days"]
    assert desk.notices(rma) == ["return_instructions", "reminder"]
    assert "16 November 2026" in bodies(desk, rma)["reminder"]
    assert desk.status(rma) == "running"
    assert waits_for(desk, rma) == ["work_shipped"]

    desk.advance(days=4)  # day 9: no second reminder
    assert desk.notices(rma) == ["return_instructions", "reminder"]

    ship(desk, rma)
    assert desk.data(rma)["shipment"]["status"] == "shipped"
    assert waits_for(desk, rma) == AWAITING_NEWS
    desk.advance(days=6)  # past day 14: the lapse timer went with the shipment
    assert fired(desk, rma) == ["no_shipment_5_days"]
    assert desk.notices(rma) == ["return_instructions", "reminder"]


def test_after_fourteen_days_without_a_shipment_the_request_lapses(desk: Desk) -> None:
    rma = start(desk, seller_pays=True)

    desk.advance(days=5, minutes=1)
    desk.advance(days=8, hours=23)
    assert desk.status(rma) == "running"
    desk.advance(hours=1)

    assert fired(desk, rma) == ["no_shipment_5_days", "no_shipment_14_days"]
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["shipping_result"] == "lapsed"
    assert desk.notices(rma) == ["return_instructions", "reminder", "lapsed"]
    with pytest.raises(InvalidStateError):
        desk.message(rma, "return_shipped", {})


# -- following the parcel -------------------------------------------------------------------


def test_parcel_updates_are_recorded_until_the_work_arrives(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)
    ship(desk, rma)

    update(desk, rma, note="left Shanghai")
    update(desk, rma, note="customs cleared")
    desk.advance(days=3)
    update(desk, rma, note="out for delivery")

    data = desk.data(rma)
    assert data["parcel_updates"] == 3
    assert data["parcel_update"] == {"status": "in_transit", "note": "out for delivery"}
    assert data["shipment"]["status"] == "in_transit"
    assert "shipping_result" not in data
    assert waits_for(desk, rma) == AWAITING_NEWS

    desk.advance(hours=5)
    ok(desk.message(rma, "return_received", {}, actor="returns-desk"))

    assert desk.status(rma) == "completed"
    data = desk.data(rma)
    assert data["shipping_result"] == "delivered"
    assert data["received_at"] == desk.now.isoformat()
    assert data["shipment"]["status"] == "delivered"
    assert tracking_events(desk, rma) == [
        "shipped",
        "in_transit",
        "in_transit",
        "in_transit",
        "delivered",
    ]
    assert desk.completed_steps(rma)[-5:] == [
        "register_shipment",
        "record_tracking_event",
        "record_tracking_event",
        "record_tracking_event",
        "record_arrival",
    ]
    assert desk.notices(rma) == ["return_instructions"]


def test_after_twenty_updates_only_the_arrival_is_awaited(desk: Desk) -> None:
    rma = start(desk, seller_pays=True)
    ok(desk.message(rma, "return_shipped", {}))

    for _ in range(20):
        update(desk, rma)

    assert desk.data(rma)["parcel_updates"] == 20
    assert waits_for(desk, rma) == ["work_received_after_limit"]
    with pytest.raises(InvalidStateError, match="parcel_update"):
        desk.message(rma, "parcel_update", {"status": "in_transit", "note": "one more"})

    ok(desk.message(rma, "return_received", {}))
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["shipping_result"] == "delivered"
    assert tracking_events(desk, rma).count("in_transit") == 20


def test_a_lost_parcel_that_is_found_goes_on_to_arrive(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)
    ship(desk, rma)

    update(desk, rma, "lost", "no scan for 6 days")

    task = desk.task(rma, "trace_lost_parcel")
    assert task.role == "logistics"
    assert task.due_at == desk.now + timedelta(days=3)
    assert desk.data(rma)["shipment"]["status"] == "lost"
    assert waits_for(desk, rma) == []

    desk.complete(
        rma, "trace_lost_parcel", {"found": True, "note": "at the Hong Kong hub"}, actor=LOGISTICS
    )
    assert desk.tasks(rma) == []
    assert waits_for(desk, rma) == AWAITING_NEWS
    assert desk.data(rma)["parcel_trace"] == {"found": True, "note": "at the Hong Kong hub"}

    update(desk, rma, "in_transit", "back on its way")
    ok(desk.message(rma, "return_received", {}))

    data = desk.data(rma)
    assert data["shipping_result"] == "delivered"
    assert data["parcel_updates"] == 2
    assert tracking_events(desk, rma) == ["shipped", "lost", "in_transit", "delivered"]


def test_a_lost_parcel_that_is_not_found_ends_the_return_shipping_as_lapsed(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=False)
    ship(desk, rma)
    update(desk, rma, "lost", "no scan for 6 days")

    desk.complete(
        rma, "trace_lost_parcel", {"found": False, "note": "carrier gave up"}, actor=LOGISTICS
    )

    assert desk.status(rma) == "completed"
    data = desk.data(rma)
    assert data["shipping_result"] == "lapsed"
    assert "received_at" not in data
    assert data["shipment"]["status"] == "lost"
    assert desk.completed_steps(rma)[-2:] == ["record_tracking_event", "trace_lost_parcel"]


def test_a_parcel_update_with_an_unknown_status_is_left_out_and_the_wait_goes_on(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=False)
    ship(desk, rma)

    ok(desk.message(rma, "parcel_update", {"status": "at the hub", "note": "scan"}))

    assert errors(desk, rma) == ["parcel_update_refused"]
    data = desk.data(rma)
    assert data["parcel_update_refusal"] == {
        "reason": "'at the hub' is not a parcel status; a parcel update says shipped, "
        "in_transit, delivered or lost."
    }
    assert data["shipment"]["status"] == "shipped"
    assert data["parcel_updates"] == 0
    assert tracking_events(desk, rma) == ["shipped"]
    assert desk.show(rma).incident_count == 0
    assert waits_for(desk, rma) == AWAITING_NEWS

    update(desk, rma, "In transit", "hub scan")

    data = desk.data(rma)
    assert data["shipment"]["status"] == "in_transit"
    assert data["parcel_updates"] == 1
    assert data["parcel_update_refusal"] is None
    assert tracking_events(desk, rma) == ["shipped", "in_transit"]


# -- a silent parcel -------------------------------------------------------------------------


def test_a_parcel_without_news_for_thirty_days_is_traced(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)
    ship(desk, rma)

    desk.advance(days=29, hours=23)
    assert desk.tasks(rma) == []
    desk.advance(hours=2)

    assert fired(desk, rma) == ["no_news_30_days"]
    task = desk.task(rma, "trace_lost_parcel")
    assert task.role == "logistics"
    assert task.due_at == T0 + timedelta(days=30 + 3)  # timed from when the 30 days ended
    assert waits_for(desk, rma) == []

    desk.complete(
        rma, "trace_lost_parcel", {"found": True, "note": "held at customs"}, actor=LOGISTICS
    )
    assert waits_for(desk, rma) == AWAITING_NEWS
    desk.advance(days=29)  # the thirty days start again
    assert desk.tasks(rma) == []
    ok(desk.message(rma, "return_received", {}))

    assert desk.status(rma) == "completed"
    assert desk.data(rma)["shipping_result"] == "delivered"
    assert desk.completed_steps(rma)[-3:] == [
        "register_shipment",
        "trace_lost_parcel",
        "record_arrival",
    ]


def test_news_of_the_parcel_starts_the_thirty_days_again(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)
    ship(desk, rma)
    desk.advance(days=20)
    update(desk, rma, note="left the hub")

    desk.advance(days=29)  # day 49: 29 days since the news
    assert desk.tasks(rma) == []
    assert waits_for(desk, rma) == AWAITING_NEWS
    desk.advance(days=1, minutes=1)

    assert fired(desk, rma) == ["no_news_30_days"]
    assert desk.open_steps(rma) == ["trace_lost_parcel"]


def test_a_silent_parcel_that_is_not_found_ends_the_return_shipping_as_lapsed(
    desk: Desk,
) -> None:
    rma = start(desk, seller_pays=True)
    ok(desk.message(rma, "return_shipped", {}))
    desk.advance(days=30, minutes=1)

    desk.complete(rma, "trace_lost_parcel", {"found": False, "note": "no trace"}, actor=LOGISTICS)

    assert desk.status(rma) == "completed"
    assert desk.data(rma)["shipping_result"] == "lapsed"
    assert desk.data(rma)["parcel_trace"] == {"found": False, "note": "no trace"}
    assert "received_at" not in desk.data(rma)


def test_after_twenty_updates_a_silent_parcel_is_traced_too(desk: Desk) -> None:
    rma = start(desk, seller_pays=True)
    ok(desk.message(rma, "return_shipped", {}))
    for _ in range(20):
        update(desk, rma)
    assert waits_for(desk, rma) == ["work_received_after_limit"]

    desk.advance(days=30, minutes=1)

    assert fired(desk, rma) == ["no_news_after_limit"]
    desk.complete(rma, "trace_lost_parcel", {"found": True}, actor=LOGISTICS)
    assert waits_for(desk, rma) == ["work_received_after_limit"]
    ok(desk.message(rma, "return_received", {}))
    assert desk.data(rma)["shipping_result"] == "delivered"


# -- escalations -----------------------------------------------------------------------------


def test_an_overdue_tracking_number_escalates_and_the_task_stays_open(desk: Desk) -> None:
    rma = start(desk, seller_pays=False)
    ok(desk.message(rma, "return_shipped", {"carrier": "SF Express"}))

    desk.advance(days=2, minutes=1)

    assert fired(desk, rma) == ["get_tracking_number_due"]
    task = desk.task(rma, "get_tracking_number")
    assert task.escalated_to == "logistics_supervisor"
    assert [t.bpmn_id for t in desk.engine().tasks(role="logistics_supervisor")] == [
        "get_tracking_number"
    ]
    escalated = [e for e in desk.history(rma) if e.kind == "escalated"]
    assert [(e.bpmn_id, e.data["role"]) for e in escalated] == [
        ("get_tracking_number", "logistics_supervisor")
    ]

    desk.complete(
        rma,
        "get_tracking_number",
        {"carrier": "SF Express", "tracking_number": "SF5550001111"},
        actor=OTHER_LOGISTICS,
    )
    assert desk.data(rma)["shipment"]["tracking_number"] == "SF5550001111"


def test_an_overdue_trace_escalates_and_the_task_stays_open(desk: Desk) -> None:
    rma = start(desk, seller_pays=True)
    ok(desk.message(rma, "return_shipped", {}))
    update(desk, rma, "lost", "no scan")

    desk.advance(days=3, minutes=1)

    assert "trace_lost_parcel_due" in fired(desk, rma)
    assert desk.status(rma) == "running"
    assert desk.task(rma, "trace_lost_parcel").escalated_to == "logistics_supervisor"
    desk.complete(rma, "trace_lost_parcel", {"found": True}, actor=LOGISTICS)
    assert waits_for(desk, rma) == AWAITING_NEWS


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_main_path_on_postgresql(pg_desk: Desk) -> None:
    rma = start(pg_desk, seller_pays=False)
    pg_desk.advance(days=5, minutes=1)
    ok(pg_desk.message(rma, "return_shipped", {"carrier": "SF Express"}))
    pg_desk.complete(
        rma,
        "get_tracking_number",
        {"carrier": "SF Express", "tracking_number": "SF4242424242"},
        actor=LOGISTICS,
    )
    update(pg_desk, rma)
    ok(pg_desk.message(rma, "return_received", {}))

    assert pg_desk.status(rma) == "completed"
    data = pg_desk.data(rma)
    assert data["shipping_result"] == "delivered"
    assert data["received_at"] == pg_desk.now.isoformat()
    assert pg_desk.notices(rma) == ["return_instructions", "reminder"]
    assert tracking_events(pg_desk, rma) == ["shipped", "in_transit", "delivered"]
