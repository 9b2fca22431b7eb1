"""processes/inspection.bpmn: inspecting the returned work on receipt.

Run on its own through the returns desk (the real handlers, a fresh engine per step):
the inspector's report is compared with the condition reports made at dispatch and with
the evidence; a report with something to put right (observations without photos, an
deduction that is not an amount, ...) sends the inspector back with the reason (three
times at most, then the last comparison fails as an incident: missing
photos an operator adds and retries); a mismatch locks the evidence; the customer is told
the result. What the form itself refuses (an unknown outcome, a deduction given as a
number) is refused before anything changes, and the task stays as it was.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Desk
from sqlalchemy import select

from engine import FormValidationError
from handlers.store.tables import evidence, outbox

INSPECTOR = "inspector-ivy"
OTHER_INSPECTOR = "inspector-ian"
ORDERS: list[dict[str, Any]] = [
    {
        "order_number": "OG-2026-0212",
        "channel": "online_shop",
        "jurisdiction": "EU",
        "currency": "EUR",
        "sold_at": "2026-10-15",
        "delivered_at": "2026-10-21",
        "payment_method": "card",
        "payer": "Hanna Berg",
        "shipping_charge": "40.00",
        "customer": {
            "name": "Hanna Berg",
            "email": "hanna.berg@example.de",
            "locale": "de-DE",
            "address": "Auguststrasse 9, 10117 Berlin",
        },
        "artworks": [
            {
                "artwork_id": "OIL-0212",
                "title": "Birches in March",
                "artist": "Jonas Albrecht",
                "category": "painting",
                "price": "4500.00",
                "condition": {
                    "grade": "excellent",
                    "notes": "canvas on its stretcher, no retouching",
                    "certificate": "COA-0212",
                    "accessories": ["certificate", "hanging wire"],
                },
            }
        ],
    },
    {
        "order_number": "OG-2026-0307",
        "channel": "online_shop",
        "jurisdiction": "EU",
        "currency": "EUR",
        "sold_at": "2026-10-20",
        "delivered_at": "2026-10-28",
        "payment_method": "card",
        "payer": "Paul Meyer",
        "shipping_charge": "0",
        "customer": {
            "name": "Paul Meyer",
            "email": "paul.meyer@example.de",
            "locale": "en",
            "address": "Hafenstrasse 2, 20359 Hamburg",
        },
        "artworks": [
            {
                "artwork_id": "DIP-0307-L",
                "title": "Tidal Diptych, left panel",
                "artist": "Ines Roth",
                "category": "painting",
                "price": "1500.00",
                "flags": {"indivisible_set": True, "set_id": "DIP-0307"},
                "condition": {
                    "grade": "excellent",
                    "notes": "edition 4/10",
                    "accessories": ["certificate"],
                },
            },
            {
                "artwork_id": "DIP-0307-R",
                "title": "Tidal Diptych, right panel",
                "artist": "Ines Roth",
                "category": "painting",
                "price": "1500.00",
                "flags": {"indivisible_set": True, "set_id": "DIP-0307"},
                "condition": {
                    "grade": "good",
                    "notes": "edition 4/10, small frame rub",
                    "accessories": ["hanging kit"],
                },
            },
        ],
    },
]


# -- helpers -------------------------------------------------------------------------------


def start(desk: Desk, *, diptych: bool = False) -> str:
    desk.import_orders(ORDERS)
    if diptych:
        return desk.apply(
            "OG-2026-0307", ["DIP-0307-L", "DIP-0307-R"], reason="no_reason", process="inspection"
        )
    return desk.apply("OG-2026-0212", ["OIL-0212"], reason="no_reason", process="inspection")


def photo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "camera" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 JPEG " + name.encode())
    return path


def report(
    outcome: str,
    grade: str = "excellent",
    observations: list[dict[str, Any]] | None = None,
    accessories: list[str] | None = None,
    deduction: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The inspector's form, with the fields it declares (`deduction` {amount, currency}
    is given as deduction_amount and deduction_currency)."""
    data: dict[str, Any] = {
        "outcome": outcome,
        "grade": grade,
        "observations": observations or [],
        "accessories": ["certificate", "hanging wire"] if accessories is None else accessories,
        **fields,
    }
    if deduction is not None:
        data["deduction_amount"] = deduction["amount"]
        data["deduction_currency"] = deduction["currency"]
    return data


def inspect(desk: Desk, rma: str, data: dict[str, Any], actor: str = INSPECTOR) -> None:
    result = desk.complete(rma, "inspect_work", data, actor=actor)
    assert result.failures == [], result.failures


def bodies(desk: Desk, rma: str) -> dict[str, str]:
    with desk.engine().db.read() as session:
        rows = session.execute(
            select(outbox.c.notice, outbox.c.body).where(outbox.c.rma == rma)
        ).all()
    return {row.notice: row.body for row in rows}


def locked(desk: Desk, rma: str) -> list[bool]:
    with desk.engine().db.read() as session:
        rows = session.execute(
            select(evidence.c.locked_at).where(evidence.c.rma == rma).order_by(evidence.c.id)
        ).all()
    return [row.locked_at is not None for row in rows]


def errors(desk: Desk, rma: str) -> list[str]:
    return [e.data["code"] for e in desk.history(rma) if e.kind == "error_thrown"]


def fired(desk: Desk, rma: str) -> list[str]:
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


SURFACE = {"zone": "surface", "text": "Light scuff lower left", "photos": ["surface-1.jpg"]}
SUPPORT = {
    "zone": "support",
    "text": "Canvas taken off its stretcher",
    "photos": ["support-1.jpg", "support-2.jpg"],
}


# -- the outcomes ----------------------------------------------------------------------------


def test_the_inspector_has_two_days_to_inspect(desk: Desk) -> None:
    rma = start(desk)

    task = desk.task(rma, "inspect_work")
    assert task.role == "inspector"
    assert task.due_at == desk.now + timedelta(days=2)
    assert desk.data(rma)["report_rounds"] == 0
    assert desk.notices(rma) == []


def test_an_accepted_work(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    desk.add_evidence(rma, [photo(tmp_path, "surface-1.jpg")])

    inspect(desk, rma, report("accepted", observations=[SURFACE]))

    assert desk.status(rma) == "completed"
    assert desk.data(rma)["inspection"] == {
        "outcome": "accepted",
        "grade": "excellent",
        "observations": ["Light scuff lower left"],
        "accessories_missing": [],
        "deduction": None,
        "differences": [],
    }
    assert desk.completed_steps(rma) == [
        "inspect_work",
        "compare_reports",
        "send_inspection_result",
    ]
    assert desk.notices(rma) == ["inspection_result"]
    body = bodies(desk, rma)["inspection_result"]
    assert "we have accepted it" in body
    assert "- Light scuff lower left" in body
    assert locked(desk, rma) == [False]


def test_an_accepted_work_with_a_deduction(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    desk.add_evidence(rma, [photo(tmp_path, "support-1.jpg"), photo(tmp_path, "support-2.jpg")])

    inspect(
        desk,
        rma,
        report(
            "accepted_with_deduction",
            grade="fair",
            observations=[SUPPORT],
            deduction={"amount": "300.00", "currency": "EUR"},
        ),
    )

    inspection = desk.data(rma)["inspection"]
    assert inspection["outcome"] == "accepted_with_deduction"
    assert inspection["deduction"] == {"amount": "300.00", "currency": "EUR"}
    assert inspection["differences"] == ["OIL-0212: grade excellent at dispatch, fair now"]
    body = bodies(desk, rma)["inspection_result"]
    assert "EUR 300.00 will be deducted from what we credit you for the work" in body
    assert "- Canvas taken off its stretcher" in body
    assert desk.status(rma) == "completed"


def test_transit_damage(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    crack = {"zone": "frame_glazing", "text": "Glazing cracked", "photos": ["glass.jpg"]}
    desk.add_evidence(rma, [photo(tmp_path, "glass.jpg")])

    inspect(desk, rma, report("transit_damage", grade="good", observations=[crack]))

    inspection = desk.data(rma)["inspection"]
    assert inspection["outcome"] == "transit_damage"
    assert inspection["deduction"] is None
    assert inspection["differences"] == ["OIL-0212: grade excellent at dispatch, good now"]
    assert "damaged in transit" in bodies(desk, rma)["inspection_result"]
    assert "lock_evidence" not in desk.completed_steps(rma)
    assert locked(desk, rma) == [False]


def test_a_mismatch_locks_the_evidence(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    stamp = {"zone": "support", "text": "Canvas stamp differs", "photos": ["stamp.jpg"]}
    desk.add_evidence(rma, [photo(tmp_path, "stamp.jpg"), photo(tmp_path, "overall.jpg")])

    inspect(desk, rma, report("mismatch", grade="good", observations=[stamp], accessories=[]))

    data = desk.data(rma)
    assert data["inspection"]["outcome"] == "mismatch"
    assert data["inspection"]["accessories_missing"] == ["certificate", "hanging wire"]
    assert data["evidence_locked"] == 2
    assert locked(desk, rma) == [True, True]
    assert desk.completed_steps(rma) == [
        "inspect_work",
        "compare_reports",
        "lock_evidence",
        "send_inspection_result",
    ]
    assert "does not match our records" in bodies(desk, rma)["inspection_result"]
    desk.add_evidence(rma, [photo(tmp_path, "later.jpg")])  # kept beside, not locked
    assert locked(desk, rma) == [True, True, False]


def test_the_certificate_and_accessories_are_checked(desk: Desk) -> None:
    rma = start(desk)

    inspect(desk, rma, report("accepted", accessories=["hanging wire"]))

    inspection = desk.data(rma)["inspection"]
    assert inspection["accessories_missing"] == ["certificate"]
    assert inspection["observations"] == []
    assert desk.status(rma) == "completed"


def test_a_set_is_compared_panel_by_panel_in_one_report(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk, diptych=True)
    assert [w["artwork_id"] for w in desk.data(rma)["artworks"]] == ["DIP-0307-L", "DIP-0307-R"]
    rub = {"zone": "frame_glazing", "text": "Frame rub, right panel", "photos": ["rub.jpg"]}
    desk.add_evidence(rma, [photo(tmp_path, "rub.jpg")])

    inspect(
        desk,
        rma,
        report("accepted", grade="good", observations=[rub], accessories=["certificate"]),
    )

    inspection = desk.data(rma)["inspection"]
    # Each panel is held against its own condition report at dispatch: the left one was
    # excellent, the right one already good; the right one came with a hanging kit.
    assert inspection["differences"] == ["DIP-0307-L: grade excellent at dispatch, good now"]
    assert inspection["accessories_missing"] == ["hanging kit"]
    assert desk.notices(rma) == ["inspection_result"]
    assert desk.completed_steps(rma).count("compare_reports") == 1


# -- a report to put right -------------------------------------------------------------------


def test_missing_photos_send_the_inspector_back_for_them(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    desk.add_evidence(rma, [photo(tmp_path, "support-1.jpg")])

    inspect(
        desk,
        rma,
        report(
            "accepted_with_deduction",
            grade="fair",
            observations=[SUPPORT],
            deduction={"amount": "300.00", "currency": "EUR"},
        ),
    )

    assert errors(desk, rma) == ["report_incomplete"]
    reason = (
        "Observation 1 ('Canvas taken off its stretcher') cites the photo support-2.jpg that "
        f"is not in the return's evidence: add it with `artreturns evidence add {rma} "
        "FILE...` or correct the file names."
    )
    [thrown] = [e for e in desk.history(rma) if e.kind == "error_thrown"]
    assert thrown.data["payload"] == {"reason": reason}
    assert desk.data(rma)["report_problem"] == {"reason": reason}
    task = desk.task(rma, "complete_report")
    assert task.role == "inspector"
    assert task.due_at == desk.now + timedelta(days=1)
    assert "inspection" not in desk.data(rma)

    desk.add_evidence(rma, [photo(tmp_path, "support-2.jpg")])
    desk.complete(
        rma,
        "complete_report",
        report(
            "accepted_with_deduction",
            grade="fair",
            observations=[SUPPORT],
            deduction={"amount": "300.00", "currency": "EUR"},
        ),
        actor=INSPECTOR,
    )

    data = desk.data(rma)
    assert data["report_rounds"] == 1
    assert data["report_problem"] is None
    assert data["inspection"]["deduction"] == {"amount": "300.00", "currency": "EUR"}
    assert desk.status(rma) == "completed"
    assert desk.completed_steps(rma) == [
        "inspect_work",
        "complete_report",
        "compare_reports",
        "send_inspection_result",
    ]


def test_the_deduction_comes_from_the_form_s_own_fields(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    desk.add_evidence(rma, [photo(tmp_path, "support-1.jpg"), photo(tmp_path, "support-2.jpg")])

    inspect(
        desk,
        rma,
        report(
            "accepted_with_deduction",
            grade="fair",
            observations=[SUPPORT],
            deduction_amount="300.00",
            deduction_currency="",  # left empty: the sale's currency
        ),
    )

    assert errors(desk, rma) == []
    inspection = desk.data(rma)["inspection"]
    assert inspection["deduction"] == {"amount": "300.00", "currency": "EUR"}
    assert inspection["observations"] == ["Canvas taken off its stretcher"]
    assert inspection["accessories_missing"] == []
    assert (
        "EUR 300.00 will be deducted from what we credit you for the work"
        in bodies(desk, rma)["inspection_result"]
    )
    assert desk.status(rma) == "completed"


def test_an_unknown_outcome_and_grade_are_refused_by_the_form_at_once(desk: Desk) -> None:
    rma = start(desk)
    before = desk.show(rma)

    with pytest.raises(FormValidationError) as refused:
        inspect(desk, rma, report("ok", grade="mint"))

    assert [str(p) for p in refused.value.problems] == [
        "outcome: 'ok' is not one of accepted, accepted_with_deduction, transit_damage, mismatch",
        "grade: 'mint' is not one of excellent, good, fair, poor",
    ]
    after = desk.show(rma)
    assert (after.event_count, after.data) == (before.event_count, before.data)
    assert desk.open_steps(rma) == ["inspect_work"]

    inspect(desk, rma, report("accepted"))

    assert desk.status(rma) == "completed"
    assert desk.data(rma)["inspection"]["outcome"] == "accepted"
    assert desk.notices(rma) == ["inspection_result"]


def test_a_deduction_given_as_a_number_is_refused_by_the_form(desk: Desk) -> None:
    """Money is never a float: the form's deduction_amount is text, and a JSON number
    (what `--data '{"deduction_amount": 300.00}'` gives) is refused before anything runs."""
    rma = start(desk)

    with pytest.raises(FormValidationError, match="deduction_amount: must be text"):
        inspect(desk, rma, report("accepted_with_deduction", grade="fair", deduction_amount=300.0))

    assert desk.open_steps(rma) == ["inspect_work"]
    assert errors(desk, rma) == []
    assert desk.show(rma).incident_count == 0

    inspect(desk, rma, report("accepted_with_deduction", grade="fair", deduction_amount="300.00"))
    assert desk.data(rma)["inspection"]["deduction"] == {"amount": "300.00", "currency": "EUR"}
    assert desk.status(rma) == "completed"


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (
            report("accepted", deduction_amount="300.00"),
            "A deduction is only for the outcome accepted_with_deduction; leave it out when "
            "the outcome is accepted.",
        ),
        (
            report("accepted_with_deduction", deduction_amount="4500.01"),
            "The deduction EUR 4,500.01 is more than the price of the works returned "
            "(EUR 4,500.00).",
        ),
        (
            report("accepted_with_deduction", deduction={"amount": "300", "currency": "USD"}),
            "The deduction must be in EUR, the currency of the sale, not in 'USD'.",
        ),
        (
            report("accepted_with_deduction"),
            "The outcome accepted_with_deduction needs the deduction",
        ),
    ],
)
def test_a_wrong_report_never_leaves_an_incident(
    desk: Desk, data: dict[str, Any], said: str
) -> None:
    rma = start(desk)

    inspect(desk, rma, data)

    assert said in desk.data(rma)["report_problem"]["reason"]
    assert desk.open_steps(rma) == ["complete_report"]
    assert desk.show(rma).incident_count == 0
    assert "inspection" not in desk.data(rma)


def test_after_three_rounds_the_last_comparison_fails_until_the_photos_are_there(
    desk: Desk, tmp_path: Path
) -> None:
    rma = start(desk)
    inspect(desk, rma, report("accepted", observations=[SURFACE]))

    for round_ in (1, 2, 3):
        desk.complete(
            rma, "complete_report", report("accepted", observations=[SURFACE]), actor=INSPECTOR
        )
        assert desk.data(rma)["report_rounds"] == round_

    assert errors(desk, rma) == ["report_incomplete"] * 4
    assert desk.tasks(rma) == []
    view = desk.show(rma)
    assert view.status == "running"
    assert view.incident_count == 1
    [failed] = [t for t in view.open_tasks if t.bpmn_id == "compare_last_time"]
    assert failed.state == "FAILED"
    assert "report_incomplete" in (failed.error or "")
    assert "cites the photo surface-1.jpg that is not in the return's evidence" in (
        failed.error or ""
    )
    assert desk.notices(rma) == []

    desk.add_evidence(rma, [photo(tmp_path, "surface-1.jpg")])
    result = desk.engine().retry(rma, actor="ops-olga")

    assert result.failures == []
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["inspection"]["observations"] == ["Light scuff lower left"]
    assert desk.completed_steps(rma)[-2:] == ["compare_last_time", "send_inspection_result"]


# -- escalations -----------------------------------------------------------------------------


def test_an_overdue_inspection_escalates_and_stays_open(desk: Desk) -> None:
    rma = start(desk)

    desk.advance(days=2, minutes=1)

    assert fired(desk, rma) == ["inspect_work_due"]
    task = desk.task(rma, "inspect_work")
    assert task.escalated_to == "inspector_supervisor"
    assert [t.bpmn_id for t in desk.engine().tasks(role="inspector_supervisor")] == ["inspect_work"]
    assert [(e.bpmn_id, e.data["role"]) for e in desk.history(rma) if e.kind == "escalated"] == [
        ("inspect_work", "inspector_supervisor")
    ]

    inspect(desk, rma, report("accepted"), actor=OTHER_INSPECTOR)
    assert desk.status(rma) == "completed"


def test_overdue_photos_escalate_and_stay_open(desk: Desk, tmp_path: Path) -> None:
    rma = start(desk)
    inspect(desk, rma, report("accepted", observations=[SURFACE]))

    desk.advance(days=1, minutes=1)

    assert fired(desk, rma) == ["complete_report_due"]
    assert desk.task(rma, "complete_report").escalated_to == "inspector_supervisor"
    assert desk.status(rma) == "running"

    desk.add_evidence(rma, [photo(tmp_path, "surface-1.jpg")])
    desk.complete(
        rma, "complete_report", report("accepted", observations=[SURFACE]), actor=INSPECTOR
    )
    assert desk.status(rma) == "completed"


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_deduction_on_postgresql(pg_desk: Desk, tmp_path: Path) -> None:
    rma = start(pg_desk)
    inspect(
        pg_desk,
        rma,
        report(
            "accepted_with_deduction",
            grade="fair",
            observations=[SUPPORT],
            deduction={"amount": "300.00", "currency": "EUR"},
        ),
    )
    pg_desk.add_evidence(rma, [photo(tmp_path, "support-1.jpg"), photo(tmp_path, "support-2.jpg")])
    pg_desk.complete(
        rma,
        "complete_report",
        report(
            "accepted_with_deduction",
            grade="fair",
            observations=[SUPPORT],
            deduction={"amount": "300.00", "currency": "EUR"},
        ),
        actor=INSPECTOR,
    )

    assert pg_desk.status(rma) == "completed"
    inspection = pg_desk.data(rma)["inspection"]
    assert inspection["deduction"] == {"amount": "300.00", "currency": "EUR"}
    assert inspection["differences"] == ["OIL-0212: grade excellent at dispatch, fair now"]
    assert pg_desk.notices(rma) == ["inspection_result"]
