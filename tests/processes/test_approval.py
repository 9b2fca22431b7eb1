"""processes/approval.bpmn: the approval chain of a return.

Run on its own through the returns desk (the real handlers, a fresh engine per step),
with the tier flags the approval table would give (needs_finance, needs_expert,
needs_manager). Every path is taken: each tier combination approved, a rejection at
each level, information asked for and the three-round limit, four eyes, and every
due-time timer escalating its task.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Desk

from engine import FormValidationError, PermissionDeniedError

ORDER: dict[str, Any] = {
    "order_number": "GS-2026-0404",
    "channel": "store",
    "jurisdiction": "CN",
    "currency": "CNY",
    "sold_at": "2026-10-28",
    "delivered_at": "2026-10-30",
    "payment_method": "bank_transfer",
    "payer": "Zhou Min",
    "shipping_charge": "0",
    "customer": {
        "name": "Zhou Min",
        "email": "zhou.min@example.org",
        "locale": "zh-HK",
        "address": "8 Queen's Road, Hong Kong",
    },
    "artworks": [
        {
            "artwork_id": "SC-404",
            "title": "Standing Figure",
            "artist": "Lin Qiao",
            "category": "sculpture",
            "price": "180000.00",
            "condition": {"grade": "excellent", "certificate": "COA-404"},
        }
    ],
}

# bpmn ids of the levels, the role whose lane each is in, and its data name.
LEVELS = {
    "cs": ("approve_return", "customer_service", "cs_approval"),
    "finance": ("confirm_refund_amount", "finance", "finance_approval"),
    "expert": ("appraise_work", "expert", "expert_approval"),
    "manager": ("sign_off_return", "manager", "manager_approval"),
}
# A different person for each level.
PEOPLE = {"cs": "cs-ann", "finance": "fin-fay", "expert": "exp-eli", "manager": "mgr-max"}
EXTRA = {
    "finance": {"amount": "162000.00"},
    "expert": {"appraiser": "in_house", "findings": "Cast and patina as catalogued."},
}


def start(desk: Desk, finance: bool = True, expert: bool = True, manager: bool = True) -> str:
    desk.import_orders([ORDER])
    return desk.apply(
        "GS-2026-0404",
        ["SC-404"],
        process="approval",
        extra={
            "needs_finance": finance,
            "needs_expert": expert,
            "needs_manager": manager,
            "amount": "180000.00",
            "currency": "CNY",
        },
    )


def decide(
    desk: Desk, rma: str, level: str, decision: str, actor: str | None = None, **fields: Any
) -> None:
    step = LEVELS[level][0]
    data = {"decision": decision, **EXTRA.get(level, {}), **fields}
    desk.complete(rma, step, data, actor=actor or PEOPLE[level])


def answer(desk: Desk, rma: str, level: str, text: str = "Photos of the base attached.") -> None:
    desk.complete(rma, f"get_information_for_{level}", {"answer": text}, actor="cs-cleo")


def fired(desk: Desk, rma: str) -> list[str]:
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def result(desk: Desk, rma: str) -> tuple[str, str]:
    data = desk.data(rma)
    return data["approval_result"], data["approval_note"]


# -- approvals at every tier -------------------------------------------------------------


@pytest.mark.parametrize(
    ("finance", "expert", "manager", "levels"),
    [
        (False, False, False, ["cs"]),
        (True, False, False, ["cs", "finance"]),
        (True, True, False, ["cs", "finance", "expert"]),
        (True, True, True, ["cs", "finance", "expert", "manager"]),
        (False, True, False, ["cs", "expert"]),
        (False, False, True, ["cs", "manager"]),
    ],
    ids=["T1", "finance", "finance+expert", "all four", "expert only", "manager only"],
)
def test_each_needed_level_approves_in_turn(
    desk: Desk, finance: bool, expert: bool, manager: bool, levels: list[str]
) -> None:
    rma = start(desk, finance, expert, manager)

    for level in levels:
        step, role, _ = LEVELS[level]
        task = desk.task(rma, step)
        assert desk.open_steps(rma) == [step]
        assert task.role == role
        assert "approval_result" not in desk.data(rma)
        decide(desk, rma, level, "approve", note="Fine.")

    assert desk.status(rma) == "completed"
    assert result(desk, rma) == ("approved", "")
    assert desk.completed_steps(rma) == [LEVELS[level][0] for level in levels]
    data = desk.data(rma)
    assert data["approval_rounds"] == 0
    for level, (_, _, name) in LEVELS.items():
        assert (name in data) == (level in levels)
    assert desk.notices(rma) == []  # the caller tells the customer, not this flow


def test_the_finance_level_keeps_the_confirmed_amount(desk: Desk) -> None:
    rma = start(desk, manager=False, expert=False)
    decide(desk, rma, "cs", "approve")
    decide(desk, rma, "finance", "approve", amount="150000.00", note="Less the restocking fee.")

    assert desk.data(rma)["finance_approval"] == {
        "decision": "approve",
        "amount": "150000.00",
        "note": "Less the restocking fee.",
    }
    assert result(desk, rma) == ("approved", "")


# -- rejections --------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["cs", "finance", "expert", "manager"])
def test_a_rejection_at_any_level_ends_the_chain(desk: Desk, level: str) -> None:
    rma = start(desk)
    order = list(LEVELS)
    for earlier in order[: order.index(level)]:
        decide(desk, rma, earlier, "approve")

    decide(desk, rma, level, "reject", note=f"Rejected by {level}: the base is damaged.")

    assert desk.status(rma) == "completed"
    assert result(desk, rma) == ("rejected", f"Rejected by {level}: the base is damaged.")
    assert desk.tasks(rma) == []
    assert desk.completed_steps(rma) == [LEVELS[x][0] for x in order[: order.index(level) + 1]]


def test_a_rejection_without_a_note_still_gives_a_reason(desk: Desk) -> None:
    rma = start(desk)
    decide(desk, rma, "cs", "approve")
    decide(desk, rma, "finance", "reject")

    approval_result, note = result(desk, rma)
    assert approval_result == "rejected"
    assert note == "Finance did not confirm the refund amount."


def test_an_unknown_decision_is_refused_and_the_task_stays_open(desk: Desk) -> None:
    rma = start(desk)
    task = desk.task(rma, "approve_return")
    events = len(desk.history(rma))

    with pytest.raises(FormValidationError, match="decision: 'maybe' is not one of approve, "):
        decide(desk, rma, "cs", "maybe")

    assert desk.task(rma, "approve_return").id == task.id
    assert "cs_approval" not in desk.data(rma)
    assert len(desk.history(rma)) == events
    decide(desk, rma, "cs", "approve")
    assert desk.open_steps(rma) == ["confirm_refund_amount"]


# -- more information --------------------------------------------------------------------


@pytest.mark.parametrize("level", ["cs", "finance", "expert", "manager"])
def test_more_information_goes_to_customer_service_and_back(desk: Desk, level: str) -> None:
    rma = start(desk)
    order = list(LEVELS)
    for earlier in order[: order.index(level)]:
        decide(desk, rma, earlier, "approve")
    step = LEVELS[level][0]

    decide(desk, rma, level, "more_information", note="Send photos of the base.")

    ask = desk.task(rma, f"get_information_for_{level}")
    assert desk.open_steps(rma) == [f"get_information_for_{level}"]
    assert ask.role == "customer_service"
    answer(desk, rma, level, "Four photos of the base, no cracks.")

    assert desk.open_steps(rma) == [step]  # back to the same level
    data = desk.data(rma)
    assert data["information"] == {"answer": "Four photos of the base, no cracks."}
    assert data["approval_rounds"] == 1
    # The same person may decide their own level again.
    decide(desk, rma, level, "approve")
    for later in order[order.index(level) + 1 :]:
        decide(desk, rma, later, "approve")
    assert result(desk, rma) == ("approved", "")
    assert desk.completed_steps(rma).count(step) == 2


def test_three_rounds_of_information_then_a_fourth_request_rejects(desk: Desk) -> None:
    rma = start(desk)
    decide(desk, rma, "cs", "more_information")
    answer(desk, rma, "cs")
    decide(desk, rma, "cs", "more_information")
    answer(desk, rma, "cs")
    decide(desk, rma, "cs", "approve")
    decide(desk, rma, "finance", "more_information")
    answer(desk, rma, "finance")  # the third round, counted across levels
    assert desk.data(rma)["approval_rounds"] == 3
    assert desk.open_steps(rma) == ["confirm_refund_amount"]

    decide(desk, rma, "finance", "more_information", note="Still unclear.")

    assert desk.status(rma) == "completed"
    assert result(desk, rma) == ("rejected", "Too many requests for information")
    assert desk.tasks(rma) == []
    assert desk.completed_steps(rma).count("get_information_for_finance") == 1


@pytest.mark.parametrize("level", ["cs", "finance", "expert", "manager"])
def test_the_limit_holds_at_each_level(desk: Desk, level: str) -> None:
    rma = start(desk)
    order = list(LEVELS)
    for earlier in order[: order.index(level)]:
        decide(desk, rma, earlier, "approve")
    for _ in range(3):
        decide(desk, rma, level, "more_information")
        answer(desk, rma, level)
    assert desk.open_steps(rma) == [LEVELS[level][0]]

    decide(desk, rma, level, "more_information")

    assert result(desk, rma) == ("rejected", "Too many requests for information")
    assert desk.completed_steps(rma).count(f"get_information_for_{level}") == 3
    assert desk.tasks(rma) == []


# -- four eyes ---------------------------------------------------------------------------


def test_one_person_cannot_decide_two_levels(desk: Desk) -> None:
    rma = start(desk)
    decide(desk, rma, "cs", "approve", actor="cs-ann")
    task = desk.task(rma, "confirm_refund_amount")

    with pytest.raises(PermissionDeniedError):
        decide(desk, rma, "finance", "approve", actor="cs-ann")

    denied = [e for e in desk.history(rma) if e.kind == "denied"]
    assert len(denied) == 1
    assert denied[0].bpmn_id == "confirm_refund_amount"
    assert denied[0].actor == "cs-ann"
    assert "Approve the return" in denied[0].data["reason"]
    assert desk.task(rma, "confirm_refund_amount").id == task.id
    assert "finance_approval" not in desk.data(rma)

    decide(desk, rma, "finance", "approve", actor="fin-fay")
    assert desk.open_steps(rma) == ["appraise_work"]
    # Neither of them may sign the last level either.
    decide(desk, rma, "expert", "approve", actor="exp-eli")
    for person in ("cs-ann", "fin-fay", "exp-eli"):
        with pytest.raises(PermissionDeniedError):
            decide(desk, rma, "manager", "approve", actor=person)
    assert len([e for e in desk.history(rma) if e.kind == "denied"]) == 4
    decide(desk, rma, "manager", "approve", actor="mgr-max")
    assert result(desk, rma) == ("approved", "")


def test_a_refused_reject_changes_nothing(desk: Desk) -> None:
    rma = start(desk, expert=False, manager=False)
    decide(desk, rma, "cs", "approve", actor="cs-ann")

    with pytest.raises(PermissionDeniedError):
        decide(desk, rma, "finance", "reject", actor="cs-ann", note="No.")

    assert desk.status(rma) == "running"
    assert "approval_result" not in desk.data(rma)
    decide(desk, rma, "finance", "approve", actor="fin-fay")
    assert result(desk, rma) == ("approved", "")


def test_gathering_information_is_not_a_level(desk: Desk) -> None:
    rma = start(desk, expert=False, manager=False)
    decide(desk, rma, "cs", "approve", actor="cs-ann")
    decide(desk, rma, "finance", "more_information", actor="fin-fay")
    desk.complete(rma, "get_information_for_finance", {"answer": "Invoice."}, actor="fin-finn")

    decide(desk, rma, "finance", "approve", actor="fin-finn")

    assert result(desk, rma) == ("approved", "")


# -- due times ---------------------------------------------------------------------------


def reach(desk: Desk, rma: str, step: str) -> None:
    """Approve (or ask) until `step` is open."""
    path = {
        "approve_return": [],
        "confirm_refund_amount": [("cs", "approve")],
        "appraise_work": [("cs", "approve"), ("finance", "approve")],
        "sign_off_return": [("cs", "approve"), ("finance", "approve"), ("expert", "approve")],
        "get_information_for_cs": [("cs", "more_information")],
        "get_information_for_expert": [
            ("cs", "approve"),
            ("finance", "approve"),
            ("expert", "more_information"),
        ],
    }[step]
    for level, decision in path:
        decide(desk, rma, level, decision)


@pytest.mark.parametrize(
    ("step", "days", "role"),
    [
        ("approve_return", 2, "customer_service"),
        ("confirm_refund_amount", 2, "finance"),
        ("appraise_work", 5, "expert"),
        ("sign_off_return", 3, "manager"),
        ("get_information_for_cs", 3, "customer_service"),
        ("get_information_for_expert", 3, "customer_service"),
    ],
)
def test_an_overdue_task_escalates_to_its_supervisor_and_stays_open(
    desk: Desk, step: str, days: int, role: str
) -> None:
    rma = start(desk)
    reach(desk, rma, step)
    task = desk.task(rma, step)
    assert task.escalated_to is None

    desk.advance(days=days, minutes=-1)
    assert fired(desk, rma) == []
    desk.advance(minutes=2)

    assert fired(desk, rma) == [f"{step}_due"]
    after = desk.task(rma, step)
    assert after.id == task.id
    assert after.role == role
    assert after.escalated_to == f"{role}_supervisor"
    escalated = [e for e in desk.history(rma) if e.kind == "escalated"]
    assert [(e.bpmn_id, e.data["role"]) for e in escalated] == [(step, f"{role}_supervisor")]
    assert desk.open_steps(rma) == [step]
    # It fires once: more waiting does not escalate again.
    desk.advance(days=10)
    assert fired(desk, rma) == [f"{step}_due"]


def test_an_escalated_level_can_still_be_decided(desk: Desk) -> None:
    rma = start(desk, expert=False, manager=False)
    desk.advance(days=3)
    decide(desk, rma, "cs", "approve")
    desk.advance(days=3)
    decide(desk, rma, "finance", "approve")

    assert fired(desk, rma) == ["approve_return_due", "confirm_refund_amount_due"]
    assert result(desk, rma) == ("approved", "")
    assert desk.status(rma) == "completed"


def test_a_level_asked_again_gets_a_fresh_due_time(desk: Desk) -> None:
    rma = start(desk)
    desk.advance(days=1, hours=12)
    decide(desk, rma, "cs", "more_information")
    answer(desk, rma, "cs")

    desk.advance(days=1, hours=12)  # 3 days after the first task opened, 1.5 after this one
    assert fired(desk, rma) == []
    assert desk.task(rma, "approve_return").escalated_to is None
    desk.advance(hours=13)
    assert fired(desk, rma) == ["approve_return_due"]


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.mark.postgres
def test_all_four_levels_with_a_round_of_information_on_postgres(pg_desk: Desk) -> None:
    rma = start(pg_desk)
    decide(pg_desk, rma, "cs", "approve")
    decide(pg_desk, rma, "finance", "approve")
    decide(pg_desk, rma, "expert", "more_information", note="Foundry mark?")
    answer(pg_desk, rma, "expert")
    with pytest.raises(PermissionDeniedError):
        decide(pg_desk, rma, "expert", "approve", actor="fin-fay")
    decide(pg_desk, rma, "expert", "approve")
    pg_desk.advance(days=4)
    decide(pg_desk, rma, "manager", "approve")

    assert pg_desk.status(rma) == "completed"
    assert result(pg_desk, rma) == ("approved", "")
    assert pg_desk.completed_steps(rma) == [
        "approve_return",
        "confirm_refund_amount",
        "appraise_work",
        "get_information_for_expert",
        "appraise_work",
        "sign_off_return",
    ]
    assert fired(pg_desk, rma) == ["sign_off_return_due"]
    assert [e.kind for e in pg_desk.history(rma)].count("denied") == 1
