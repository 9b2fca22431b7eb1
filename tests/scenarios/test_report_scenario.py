"""`artreturns report` over a return taken through the real procedure (processes/) on
the command line, with every time known: the fields the indicators read from a
return's data are where the procedure puts them."""

from __future__ import annotations

import json
from datetime import timedelta

from test_scenarios import (  # the desk fixture, too
    ACCEPTED,
    DELIVERED,
    Desk,
    _clean_environment,  # noqa: F401 - an autouse fixture
    day,
    desk,  # noqa: F401 - a fixture
    inspect,
    ship_and_receive,
)


def test_a_refund_confirmed_late_is_an_alarm_and_every_time_is_counted(desk: Desk) -> None:  # noqa: F811
    rma = desk.at(day(6)).apply("SO-1001", ["GP-17"], "no_reason", "Changed my mind; still sealed.")
    desk.at(day(6, 11)).complete(
        rma, "approve_return", {"decision": "approve", "note": "Sealed"}, "cs-bob"
    )
    ship_and_receive(desk, rma, day(7), day(9), tracking="SF1001000001")
    inspect(desk, rma, ACCEPTED)  # at day 9, 09:00: "Confirm the refund" opens
    # CN 7 days from receipt: due on day 16; the confirmation escalates two days before
    # (run-due from cron), and finance confirms on day 17, a day late.
    desk.at(day(15))("run-due")
    desk.at(day(17)).complete(
        rma, "confirm_refund", {"amount": "1200.00", "channel": "original_payment"}, "fin-fay"
    )
    desk.at(day(18)).message(rma, "customer_confirmation", {"score": 2, "comment": "Slow."})

    found = json.loads(desk("report", "--format", "json").stdout)
    volume = found["volume"]
    assert (volume["opened"], volume["closed"], volume["in_flight"]) == (1, 0, 1)  # follow-up
    assert [(g["group"], g["opened"]) for g in volume["by_group"]] == [("print", 1)]
    steps = {s["step"]: s for s in found["time"]["steps"]}
    assert steps["approve_return"]["role"] == "customer_service"
    assert steps["approve_return"]["waiting"]["median"] == 2 * 3600  # never claimed
    assert steps["approve_return"]["working"]["median"] == 0
    assert steps["confirm_refund"]["total"]["median"] == 8 * 86400
    assert found["time"]["bottlenecks"][0] == "confirm_refund"
    late = {s["step"]: s for s in found["deadlines"]["steps"]}
    assert (late["confirm_refund"]["breached"], late["confirm_refund"]["escalated"]) == (1, 1)
    assert late["approve_return"]["breached"] == 0
    deadline = (DELIVERED + timedelta(days=9 + 7)).date().isoformat()
    assert [(r["rma"], r["deadline"]) for r in found["deadlines"]["paid_late"]] == [(rma, deadline)]
    assert found["deadlines"]["refunds_due"] == 1
    assert found["money"] == [
        {"kind": "refunded", "amount": {"amount": "1200.00", "currency": "CNY"}, "count": 1}
    ]
    assert [(c["key"], c["count"]) for c in found["quality"]["inspections"]] == [("accepted", 1)]
    customers = found["customers"]
    assert customers["responses"] == {"part": 1, "whole": 1, "value": "1.0000"}
    assert (customers["mean"], customers["scores"]) == ("2.00", [{"key": "2", "count": 1}])
    assert found["reasons"]["counts"] == [
        {"reason": "no_reason", "category": "print", "channel": "online_shop", "count": 1}
    ]
    assert found["quality"]["error_rate"]["part"] == 0

    table = desk("report").stdout
    assert table.startswith(f"ALARM: 1 refund(s) paid after their legal deadline: {rma}")
