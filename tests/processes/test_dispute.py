"""processes/dispute.bpmn: disputes and the third-party appraisal.

Run on its own through the returns desk (the real handlers, a fresh engine per step):
an appraisal is ordered, the return's evidence is locked (also when an inspection
locked it before) and the customer told; the appraiser's report is recorded, or the
appraiser is chased every 30 days until the third chase, after which legal decides
without the report; legal's decision becomes `dispute_outcome`.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Desk
from sqlalchemy import select
from support import T0

from engine import InvalidStateError
from handlers.claims import DEFAULT_APPRAISER
from handlers.store import Services
from handlers.store.tables import claims, evidence, outbox

LEGAL = "legal-lin"
ORDER: dict[str, Any] = {
    "order_number": "AU-2026-0088",
    "channel": "auction",
    "jurisdiction": "CN",
    "currency": "CNY",
    "sold_at": "2026-07-01",
    "delivered_at": "2026-07-06",
    "payment_method": "bank_transfer",
    "payer": "Chen Wei",
    "shipping_charge": "0",
    "customer": {
        "name": "Chen Wei",
        "email": "chen.wei@example.org",
        "locale": "zh-TW",
        "address": "12 Renai Road, Taipei",
    },
    "artworks": [
        {
            "artwork_id": "LOT-17",
            "title": "Blue-and-white vase",
            "artist": "Qing dynasty, Qianlong mark",
            "category": "antique",
            "price": "600000.00",
            "flags": {"auction_lot": True, "guarantee_years": 5},
            "condition": {"grade": "good", "certificate": "CERT-17"},
        }
    ],
}


def open_dispute(
    desk: Desk, files: list[Path] | None = None, extra: dict[str, Any] | None = None
) -> str:
    desk.import_orders([ORDER])
    return desk.apply(
        "AU-2026-0088",
        ["LOT-17"],
        reason="authenticity",
        description="A laboratory report says the glaze is modern.",
        evidence=files or [],
        process="dispute",
        extra=extra,
    )


def photos(tmp_path: Path, *names: str) -> list[Path]:
    made = []
    for name in names:
        path = tmp_path / "camera" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff\xe0 JPEG " + name.encode())
        made.append(path)
    return made


def locked_at(desk: Desk, rma: str) -> list[Any]:
    """When each evidence record of the return was locked (None: not locked)."""
    with desk.engine().db.read() as session:
        rows = session.execute(
            select(evidence.c.locked_at).where(evidence.c.rma == rma).order_by(evidence.c.id)
        ).all()
    return [row.locked_at for row in rows]


def read_only(desk: Desk, rma: str) -> list[bool]:
    with desk.engine().db.connect() as conn:
        store = Services(conn, desk.folders, desk.now).evidence
        return [
            not store.path(item.sha256).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP)
            for item in store.items(rma)
        ]


def fired(desk: Desk, rma: str) -> list[str]:
    return [
        timer["bpmn_id"]
        for event in desk.history(rma)
        if event.kind == "timer_fired"
        for timer in event.data["timers"]
    ]


def appraisal_claim(desk: Desk, rma: str) -> dict[str, Any]:
    with desk.engine().db.read() as session:
        [row] = session.execute(select(claims).where(claims.c.rma == rma)).mappings().all()
    return dict(row)


def chase(desk: Desk, rma: str) -> None:
    desk.advance(days=30, minutes=1)
    desk.complete(rma, "chase_appraiser", {"note": "Reminded the institute."}, actor=LEGAL)


def test_opening_orders_an_appraisal_and_tells_the_customer(desk: Desk) -> None:
    rma = open_dispute(desk)

    data = desk.data(rma)
    assert data["appraisal"]["appraiser"] == DEFAULT_APPRAISER
    assert data["appraisal"]["reference"].startswith("APR-2026-")
    assert data["appraisal"]["status"] == "open"
    assert data["appraisal_chases"] == 0
    assert data["evidence_locked"] == 0  # nothing was kept at intake
    assert data["last_notice"]["notice"] == "dispute_opened"
    assert "appraiser" not in data  # the notice's fields stay out of the data
    assert desk.notices(rma) == ["dispute_opened"]
    with desk.engine().db.read() as session:
        body, locale = session.execute(
            select(outbox.c.body, outbox.c.locale).where(outbox.c.rma == rma)
        ).one()
    assert locale == "zh-Hant"
    assert DEFAULT_APPRAISER in body
    claim = appraisal_claim(desk, rma)
    assert (claim["kind"], claim["status"]) == ("appraisal", "open")
    assert desk.tasks(rma) == []  # waiting for the appraiser, nobody has work yet
    assert desk.status(rma) == "running"
    assert desk.completed_steps(rma) == [
        "request_appraisal",
        "lock_evidence",
        "notify_dispute_opened",
    ]


def test_opening_locks_the_evidence_before_the_customer_is_told(desk: Desk, tmp_path: Path) -> None:
    """The notice says the evidence is locked: by the time it is sent, it is."""
    rma = open_dispute(desk, photos(tmp_path, "glaze.jpg", "foot-ring.jpg"))

    assert desk.data(rma)["evidence_locked"] == 2
    assert locked_at(desk, rma) == [T0, T0]
    assert read_only(desk, rma) == [True, True]
    steps = desk.completed_steps(rma)
    assert steps.index("lock_evidence") < steps.index("notify_dispute_opened")
    with desk.engine().db.read() as session:
        body = session.execute(select(outbox.c.body).where(outbox.c.rma == rma)).scalar_one()
    assert "封存" in body  # zh-Hant: "locked"
    # Later files (the inspection's photos) are kept beside the locked ones.
    desk.add_evidence(rma, photos(tmp_path, "later.jpg"))
    assert locked_at(desk, rma) == [T0, T0, None]
    assert read_only(desk, rma)[:2] == [True, True]


def test_evidence_an_inspection_locked_before_is_left_as_it_was(desk: Desk, tmp_path: Path) -> None:
    """A mismatch found at inspection locks the evidence before the dispute opens; locking
    it again changes nothing and does not stop the dispute."""
    rma = "RMA-INSPECTED-1"
    with desk.engine().db.connect() as conn:
        store = Services(conn, desk.folders, desk.now).evidence
        for path in photos(tmp_path, "stamp.jpg", "overall.jpg"):
            store.add(rma, path, "inspector-ivy")
        assert store.lock(rma) == 2
    desk.advance(days=3)

    dispute = open_dispute(desk, extra={"rma": rma})

    assert desk.data(dispute)["evidence_locked"] == 0
    assert locked_at(desk, rma) == [T0, T0]  # still locked when the inspection locked it
    assert read_only(desk, rma) == [True, True]
    assert desk.completed_steps(dispute) == [
        "request_appraisal",
        "lock_evidence",
        "notify_dispute_opened",
    ]
    assert [e.kind for e in desk.history(dispute)].count("handler_failed") == 0
    assert desk.status(dispute) == "running"


@pytest.mark.parametrize(
    ("outcome", "extra"),
    [
        ("refund", {}),
        ("reject", {}),
        ("compensation", {"compensation_amount": "60000.00"}),
    ],
)
def test_report_then_legal_decides(desk: Desk, outcome: str, extra: dict[str, str]) -> None:
    rma = open_dispute(desk)
    desk.advance(days=20)

    desk.message(
        rma,
        "appraisal_report",
        {"authentic": False, "findings": "Glaze and foot ring are 20th century."},
        actor="appraiser-desk",
    )

    appraisal = desk.data(rma)["appraisal"]
    assert appraisal["status"] == "reported"
    assert appraisal["authentic"] is False
    assert appraisal["findings"] == "Glaze and foot ring are 20th century."
    claim = appraisal_claim(desk, rma)
    assert claim["status"] == "reported"
    assert claim["details"]["authentic"] is False
    task = desk.task(rma, "decide_dispute")
    assert task.role == "legal"
    assert "dispute_outcome" not in desk.data(rma)

    note = f"Decided: {outcome}."
    desk.complete(rma, "decide_dispute", {"outcome": outcome, "note": note, **extra}, actor=LEGAL)

    assert desk.status(rma) == "completed"
    data = desk.data(rma)
    assert data["dispute_outcome"] == outcome
    assert data["dispute_decision"] == {"outcome": outcome, "note": note, **extra}
    assert desk.completed_steps(rma) == [
        "request_appraisal",
        "lock_evidence",
        "notify_dispute_opened",
        "record_appraisal",
        "decide_dispute",
    ]
    assert fired(desk, rma) == []
    assert desk.notices(rma) == ["dispute_opened"]


def test_no_report_in_30_days_asks_legal_to_chase(desk: Desk) -> None:
    rma = open_dispute(desk)

    desk.advance(days=29, hours=23)
    assert desk.tasks(rma) == []
    desk.advance(hours=2)

    assert fired(desk, rma) == ["no_report"]
    assert desk.task(rma, "chase_appraiser").role == "legal"
    # The wait was interrupted: a report now is refused until the chase is done.
    with pytest.raises(InvalidStateError):
        desk.message(rma, "appraisal_report", {"authentic": True, "findings": "Genuine."})

    desk.complete(rma, "chase_appraiser", {"note": "Report promised."}, actor=LEGAL)
    assert desk.data(rma)["appraisal_chases"] == 1
    assert desk.tasks(rma) == []

    desk.message(rma, "appraisal_report", {"authentic": True, "findings": "Genuine."})
    assert desk.data(rma)["appraisal"]["authentic"] is True
    desk.complete(
        rma, "decide_dispute", {"outcome": "reject", "note": "The vase is genuine."}, actor=LEGAL
    )
    assert desk.data(rma)["dispute_outcome"] == "reject"
    assert desk.completed_steps(rma) == [
        "request_appraisal",
        "lock_evidence",
        "notify_dispute_opened",
        "chase_appraiser",
        "record_appraisal",
        "decide_dispute",
    ]


def test_after_three_chases_legal_decides_without_the_report(desk: Desk) -> None:
    rma = open_dispute(desk)

    chase(desk, rma)
    chase(desk, rma)
    assert desk.tasks(rma) == []
    assert desk.data(rma)["appraisal_chases"] == 2
    chase(desk, rma)

    data = desk.data(rma)
    assert data["appraisal_chases"] == 3
    assert data["appraisal_report"] is None
    assert data["appraisal"]["status"] == "open"  # nothing was recorded
    desk.task(rma, "decide_dispute")
    with pytest.raises(InvalidStateError):  # the wait is over: a late report is refused
        desk.message(rma, "appraisal_report", {"authentic": True, "findings": "Late."})

    desk.complete(
        rma,
        "decide_dispute",
        {"outcome": "refund", "note": "No appraisal within three months; we refund."},
        actor=LEGAL,
    )
    assert desk.data(rma)["dispute_outcome"] == "refund"
    assert desk.completed_steps(rma) == [
        "request_appraisal",
        "lock_evidence",
        "notify_dispute_opened",
        "chase_appraiser",
        "chase_appraiser",
        "chase_appraiser",
        "decide_dispute",
    ]
    assert fired(desk, rma) == ["no_report"] * 3
    assert appraisal_claim(desk, rma)["status"] == "open"


def test_an_overdue_chase_escalates_to_the_legal_supervisor(desk: Desk) -> None:
    rma = open_dispute(desk)
    desk.advance(days=30, minutes=1)
    before = desk.task(rma, "chase_appraiser")
    assert before.escalated_to is None

    desk.advance(days=2, minutes=1)

    assert fired(desk, rma) == ["no_report", "chase_appraiser_due"]
    after = desk.task(rma, "chase_appraiser")
    assert after.id == before.id
    assert after.escalated_to == "legal_supervisor"
    assert [e.bpmn_id for e in desk.history(rma) if e.kind == "escalated"] == ["chase_appraiser"]
    assert [t.bpmn_id for t in desk.engine().tasks(role="legal")] == ["chase_appraiser"]


def test_an_overdue_decision_escalates_and_stays_open(desk: Desk) -> None:
    rma = open_dispute(desk)
    desk.message(rma, "appraisal_report", {"authentic": False, "findings": "Modern copy."})
    before = desk.task(rma, "decide_dispute")

    desk.advance(days=4, hours=23)
    assert fired(desk, rma) == []
    desk.advance(hours=2)

    assert fired(desk, rma) == ["decide_dispute_due"]
    after = desk.task(rma, "decide_dispute")
    assert after.id == before.id
    assert after.escalated_to == "legal_supervisor"
    escalated = [e for e in desk.history(rma) if e.kind == "escalated"]
    assert [(e.bpmn_id, e.data["role"]) for e in escalated] == [
        ("decide_dispute", "legal_supervisor")
    ]
    desk.complete(
        rma, "decide_dispute", {"outcome": "refund", "note": "A modern copy."}, actor=LEGAL
    )
    assert desk.status(rma) == "completed"
    assert desk.data(rma)["dispute_outcome"] == "refund"


@pytest.mark.postgres
def test_report_and_decision_on_postgres(pg_desk: Desk) -> None:
    rma = open_dispute(pg_desk)
    chase(pg_desk, rma)
    pg_desk.message(rma, "appraisal_report", {"authentic": False, "findings": "Modern."})
    pg_desk.complete(
        rma, "decide_dispute", {"outcome": "refund", "note": "Not as sold."}, actor=LEGAL
    )

    assert pg_desk.status(rma) == "completed"
    assert pg_desk.data(rma)["dispute_outcome"] == "refund"
    assert pg_desk.data(rma)["appraisal"]["status"] == "reported"
    assert pg_desk.notices(rma) == ["dispute_opened"]
    assert appraisal_claim(pg_desk, rma)["status"] == "reported"


@pytest.mark.parametrize(("said", "recorded"), [("no", False), ("Yes", True), ("perhaps", None)])
def test_the_appraisers_verdict_is_read_as_yes_no_or_not_stated(
    desk: Desk, said: str, recorded: bool | None
) -> None:
    rma = open_dispute(desk)
    desk.message(rma, "appraisal_report", {"authentic": said, "findings": "See the report."})
    assert desk.data(rma)["appraisal"]["authentic"] is recorded
    assert desk.open_steps(rma) == ["decide_dispute"]
