"""A process owner lowers the finance threshold for CNY in approval_tiers.dmn, the way
docs/process-owners.md tells it: validate, diff, simulate, deploy; a return started
before finishes under the old tier, one started after follows the new one, and a dry run
says which running returns could move (one still queued for its first handler) and why
the others cannot; that one moves and follows the new tier."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_scenarios import (
    ACCEPTED,
    ENV_VARS,
    ORDERS,
    Desk,
    confirm_and_close,
    day,
    inspect,
    ship_and_receive,
)

from tests.integration.test_simulate import APPROVE, case

ROW = '<inputEntry id="t_finance_cny_amount"><text>&gt;= 10000</text></inputEntry>'


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ARTRETURNS_INLINE_HANDLERS", raising=False)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    made = Desk(tmp_path)
    # Two more prints bought online in China for CNY 1,200, as SO-1001 was.
    more = []
    for number, work in (("SO-2001", "GP-21"), ("SO-2002", "GP-22")):
        order = copy.deepcopy(next(o for o in ORDERS if o["order_number"] == "SO-1001"))
        order["order_number"] = number
        order["artworks"][0]["artwork_id"] = work
        more.append(order)
    extra = tmp_path / "more-orders.json"
    extra.write_text(json.dumps(more), encoding="utf-8")
    made("orders", "import", str(extra), actor="owner")
    yield made
    made.check_replays()


@pytest.fixture
def edited(tmp_path: Path) -> Path:
    """The owner's copy of processes/, the CNY finance threshold lowered to 1,000."""
    folder = tmp_path / "owner"
    shutil.copytree("processes", folder)
    table = folder / "approval_tiers.dmn"
    text = table.read_text(encoding="utf-8")
    assert text.count(ROW) == 1
    table.write_text(text.replace(ROW, ROW.replace("10000", "1000")), encoding="utf-8")
    return folder


def test_the_owner_lowers_the_finance_threshold(
    desk: Desk, edited: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = desk.at(day(2)).apply("SO-1001", ["GP-17"], "no_reason", "Changed my mind.")
    assert desk.data(before)["tier"] == "T1"
    # A return applied for while handlers run on workers waits, queued, for its first.
    monkeypatch.setenv("ARTRETURNS_INLINE_HANDLERS", "off")
    queued = desk.apply("SO-2001", ["GP-21"], "no_reason", "Changed my mind.")
    monkeypatch.delenv("ARTRETURNS_INLINE_HANDLERS")
    assert "tier" not in desk.data(queued)

    # 1. validate: the edited files are sound.
    assert desk("validate", str(edited), actor="owner").exit_code == 0
    # 2. diff: the row that changed, before and after.
    changed = desk("diff", "return_request", "--to", str(edited), actor="owner").stdout
    assert "decision approval_tiers, row t_finance_cny" in changed
    assert 'Amount ">= 10000" → ">= 1000"' in changed
    # 3. simulate: a CNY 1,200 print now goes to finance as well.
    answer = f"approve_return={json.dumps(APPROVE)}"
    for folder, tier, finance in (("processes", "T1", False), (str(edited), "T2", True)):
        found = json.loads(
            desk(
                "simulate", "return_request", "--data", json.dumps(case(1200)),
                "--answer", answer, "--path", folder, "--json", actor="owner",
            ).stdout
        )  # fmt: skip
        decided = next(s for s in found["steps"] if s["step"] == "decide_tier")
        assert decided["outputs"]["tier"] == tier
        waits = [w["step"] for w in found["waits"]]
        assert ("confirm_refund_amount" in waits) is finance
    # 4. deploy: version 2 of return_request.
    deployed = desk("deploy", str(edited), actor="owner").stdout
    assert "return_request: deployed as version 2" in deployed

    # 5. A dry run: the queued return can move; the one that was decided cannot.
    plan = desk(
        "migrate", "--process", "return_request", "--to-version", "2", "--dry-run",
        actor="owner",
    ).stdout  # fmt: skip
    assert f"{queued}: can move v1 -> v2" in plan
    assert f"{before}: stays on v1" in plan
    assert "step 'Decide the approval tier' [decide_tier] already ran" in plan
    desk("migrate", queued, "--to-version", "2", actor="owner")
    desk("worker", "--once", actor="owner")
    assert desk.data(queued)["tier"] == "T2"
    assert desk.show(queued)["process_version"] == 2

    # A return applied for after the change follows the new tier.
    after = desk.at(day(3)).apply("SO-2002", ["GP-22"], "no_reason", "Changed my mind.")
    assert (desk.data(after)["tier"], desk.show(after)["process_version"]) == ("T2", 2)
    for rma in (after, queued):
        desk.complete(rma, "approve_return", {"decision": "approve", "note": ""}, "cs-bob")
        assert desk.open_steps(rma) == ["confirm_refund_amount"]

    # The return started before finishes under the old tier: no finance approval.
    desk.at(day(3, 11)).complete(
        before, "approve_return", {"decision": "approve", "note": "Sealed"}, "cs-bob"
    )
    assert desk.open_steps(before) == []  # waiting for the parcel, not for finance
    ship_and_receive(desk, before, day(4), day(6), tracking="SF1001000009")
    inspect(desk, before, ACCEPTED)
    desk.at(day(6, 14)).complete(
        before, "confirm_refund", {"amount": "1200.00", "channel": "original_payment"}, "fin-fay"
    )
    confirm_and_close(desk, before, day(7))
    assert "close_return" in desk.path(before)  # closed (a follow-up is still to come)
    assert desk.show(before)["process_version"] == 1
    assert "confirm_refund_amount" not in desk.path(before)
