"""`artreturns simulate`: the path a return would take under the diagrams on disk, with
stub handlers and no database. An owner lowers the CNY finance threshold in a copy of
approval_tiers.dmn and sees a CNY 5,000 return go to finance, before deploying."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import cli
from engine import InputError, ProcessValidationError, Registry
from engine.simulate import Simulation, simulate

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
START = "2026-11-05T09:00:00Z"

#: What `artreturns apply` puts in a return's data, with the facts `intake.facts` would
#: add (its stub adds nothing, so they are given here): a print bought online in China,
#: returned without reason on day 3.
CASE: dict[str, Any] = {
    "rma": "RMA-2026-000001",
    "request": {
        "order_number": "D-2001",
        "artwork_ids": ["W-101"],
        "type": "return",
        "reason": "no_reason",
        "description": "Changed my mind",
        "evidence": [],
        "reported_at": "2026-11-05T09:00:00+00:00",
    },
    "customer": {"name": "Li Wei", "email": "li.wei@example.com", "locale": "zh-Hant"},
    "artworks": [{"artwork_id": "W-101", "title": "Lotus", "category": "print"}],
    "artwork": {"artwork_id": "W-101", "title": "Lotus", "artist": "Wu"},
    "jurisdiction": "CN",
    "channel": "online_shop",
    "reason": "no_reason",
    "request_type": "return",
    "custom_made": False,
    "partial_set": False,
    "auction_lot": False,
    "authenticity_disclaimer": False,
    "guarantee_years": 0,
    "days_since_delivery": 3,
    "days_since_sale": 5,
    "damage_photos": 0,
    "currency": "CNY",
    "antique": False,
    "authenticity": False,
}
APPROVE = {"decision": "approve", "note": ""}


def case(amount: int) -> dict[str, Any]:
    return {**CASE, "amount": amount}


def simulated(
    data: dict[str, Any], folder: Path = PROCESSES, process: str = "return_request", **more: Any
) -> Simulation:
    """The engine's simulation, without the command line."""
    return simulate(
        process,
        [folder],
        data,
        registry=Registry.from_entry_points(),
        start=datetime(2026, 11, 5, 9, tzinfo=UTC),
        **more,
    )


def run(*args: str, db: Path) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), "--now", START, *args])


def steps(sim: Simulation | dict[str, Any]) -> list[str]:
    found = sim.to_dict() if isinstance(sim, Simulation) else sim
    return [s["step"] for s in found["steps"]]


def outputs(found: dict[str, Any], step: str) -> dict[str, Any]:
    return next(s["outputs"] for s in found["steps"] if s["step"] == step)


@pytest.fixture
def lowered(tmp_path: Path) -> Path:
    """processes/ copied, with the CNY finance threshold lowered to 1,000."""
    copy = tmp_path / "processes"
    shutil.copytree(PROCESSES, copy)
    table = copy / "approval_tiers.dmn"
    before = '<inputEntry id="t_finance_cny_amount"><text>&gt;= 10000</text></inputEntry>'
    text = table.read_text(encoding="utf-8")
    assert text.count(before) == 1
    table.write_text(text.replace(before, before.replace("10000", "1000")), encoding="utf-8")
    return copy


def simulate_cli(
    db: Path, amount: int, *answers: str, path: Path | None = None, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    args = ["simulate", "return_request", "--data", json.dumps(case(amount)), "--json"]
    for answer in answers:
        args += ["--answer", answer]
    if path is not None:
        args += ["--path", str(path)]
    result = run(*args, *extra, db=db)
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(result.output)
    return loaded


def test_under_the_finance_threshold_customer_service_alone_approves(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    found = simulate_cli(db, 5000, f"approve_return={json.dumps(APPROVE)}")
    assert outputs(found, "decide_tier") == {
        "needs_finance": False,
        "needs_expert": False,
        "needs_manager": False,
        "tier": "T1",
    }
    path = steps(found)
    assert "approve_return" in path
    assert "confirm_refund_amount" not in path
    assert path.index("decide_tier") < path.index("approve_return") < path.index("ship_back")
    # Approved, the case goes on to the shipping and waits for the customer's parcel.
    assert found["outcome"] == "waiting"
    assert [(w["kind"], w["messages"]) for w in found["waits"]] == [("message", ["return_shipped"])]
    assert "tier" in found["changed"]
    assert found["changed"]["tier"] == [None, "T1"]
    assert not db.exists(), "simulate must not create the database"


def test_over_the_threshold_the_case_waits_for_finance(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    args = ["--data", json.dumps(case(15000)), "--answer", f"approve_return={json.dumps(APPROVE)}"]
    result = run("simulate", "return_request", *args, db=db)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Decide the approval tier (businessRule) [customer_service]" in text
    assert "needs_finance true" in text
    assert "tier T2" in text
    assert "deadline 'Approve the return' in 2 days (P2D), escalated to " in text
    assert "deadline 'Confirm the refund amount' in 2 days (P2D)" in text
    assert "Stops at 'Confirm the refund amount' (finance) waiting for: decision" in text
    assert "Stubbed (no answer, no sample): gather_facts" in text
    assert not db.exists()


def test_a_lowered_threshold_sends_the_same_case_to_finance(tmp_path: Path, lowered: Path) -> None:
    db = tmp_path / "new.db"
    approve = f"approve_return={json.dumps(APPROVE)}"
    before = simulate_cli(db, 5000, approve)
    after = simulate_cli(db, 5000, approve, path=lowered)
    assert outputs(before, "decide_tier")["tier"] == "T1"
    assert outputs(after, "decide_tier") == {
        "needs_finance": True,
        "needs_expert": False,
        "needs_manager": False,
        "tier": "T2",
    }
    assert "confirm_refund_amount" not in steps(before)
    assert after["waits"] == [
        {
            "kind": "user",
            "step": "confirm_refund_amount",
            "name": "Confirm the refund amount",
            "lane": "finance",
            "fields": ["decision"],
            "messages": [],
            "due_in_seconds": None,
        }
    ]
    # With finance's answer too, the new path runs through finance to the shipping.
    finance = 'confirm_refund_amount={"decision": "approve", "amount": "5000.00"}'
    through = simulate_cli(db, 5000, approve, finance, path=lowered)
    path = steps(through)
    assert (
        path.index("approve_return") < path.index("confirm_refund_amount") < path.index("ship_back")
    )
    assert [d["timer"] for d in through["deadlines"]][:2] == [
        "approve_return_due",
        "confirm_refund_amount_due",
    ]
    assert not db.exists()


def test_an_existing_database_is_not_changed(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    assert run("init", db=db).exit_code == 0
    assert run("deploy", str(PROCESSES), db=db).exit_code == 0
    before = files_of(tmp_path)
    found = simulate_cli(db, 15000, f"approve_return={json.dumps(APPROVE)}")
    assert found["waits"][0]["step"] == "confirm_refund_amount"
    assert files_of(tmp_path) == before


def files_of(folder: Path) -> dict[str, str]:
    """Every file under a folder (the database, its WAL, its data folder) by its hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_fired_timers_lapse_the_return_when_nothing_is_shipped() -> None:
    sim = simulated(case(5000), answers={"approve_return": APPROVE}, fire_timers=True)
    assert sim.outcome == "ended"
    path = steps(sim)
    assert path[-2:] == ["close_lapsed", "lapsed"]
    fired = {d.name: d.due_in for d in sim.deadlines if d.fired}
    assert fired == {"No shipment after 5 days": "5 days", "No shipment after 14 days": "14 days"}
    assert sim.changed["shipping_result"] == [None, "lapsed"]
    assert "Ends." in sim.lines()


def test_a_message_answer_delivers_it_and_unused_answers_are_named() -> None:
    sim = simulated(
        case(5000),
        answers={
            "Approve the return": APPROVE,
            "return_shipped": {"carrier": "SF Express", "tracking_number": "SF2001000001"},
            "no_such_step": {},
        },
    )
    path = steps(sim)
    assert "work_shipped" in path
    assert "register_shipment" in path
    assert sim.unused_answers == ["no_such_step"]
    assert "Answers not used: no_such_step" in sim.lines()


def test_failures_are_reported_not_raised() -> None:
    """Without the facts, the policy table cannot decide: the run says where it failed."""
    data = {k: v for k, v in CASE.items() if k != "days_since_delivery"}
    sim = simulated(data)
    assert sim.outcome == "failed"
    assert sim.error is not None
    assert "Apply the return policy" in sim.error
    assert steps(sim)[-1] == "gather_facts"


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no process 'return_requset'") as refused:
        simulated({}, process="return_requset")
    assert refused.value.hint == "Did you mean 'return_request'?"
    broken = tmp_path / "broken"
    shutil.copytree(PROCESSES, broken)
    bpmn = broken / "refund.bpmn"
    bpmn.write_text(bpmn.read_text(encoding="utf-8").replace('"payments.refund"', '"pay.it"'))
    with pytest.raises(ProcessValidationError):
        simulated({}, broken)
    result = run("simulate", "return_request", "--answer", "approve_return", db=tmp_path / "x.db")
    assert result.exit_code == 2
    assert "is not STEP=JSON" in result.output
    assert not (tmp_path / "x.db").exists()
