"""Versions and migration: running instances stay on their version; `migrate` moves
those it safely can to a newer one, refuses the others with the reason, records each
move, and a moved instance still replays (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import Engine, InvalidStateError, PermissionDeniedError
from engine.persistence import InstanceRecord
from tests.support import BPMN, clock_of

ACTOR = "ops"
FILES = ("rule_after_entry.bpmn", "tier_decision.dmn")


@pytest.fixture
def diagrams(tmp_path: Path) -> Path:
    folder = tmp_path / "diagrams"
    folder.mkdir()
    for name in (*FILES, "timers_catch_up.bpmn"):
        shutil.copy(BPMN / name, folder / name)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def deploy(engine: Engine, diagrams: Path, actor: str = "owner") -> int:
    [deployed] = [
        d
        for d in engine.deploy([diagrams / n for n in FILES], actor=actor)
        if d.process_id == "rule_after_entry"
    ]
    return deployed.version


def lower_the_clerk_limit(diagrams: Path) -> None:
    """Amounts under 10,000 become a clerk's (they were a manager's from 1,000)."""
    edit(
        diagrams / "tier_decision.dmn",
        '<inputEntry id="r_clerk_amount"><text>&lt; 1000</text>',
        '<inputEntry id="r_clerk_amount"><text>&lt; 10000</text>',
    )


def version_of(engine: Engine, key: str) -> int:
    return engine.show(key).process_version


def test_before_and_after_a_tier_change(engine: Engine, diagrams: Path) -> None:
    """A return started before the change finishes under the old tier; one started after
    follows the new; a dry run says which running ones could move, and why not."""
    assert deploy(engine, diagrams) == 1
    engine.start("rule_after_entry", {"customer": "x"}, business_key="OLD", actor=ACTOR)
    engine.start("rule_after_entry", {"customer": "x"}, business_key="WAITING", actor=ACTOR)
    engine.complete("OLD:enter", {"amount": 5000}, actor=ACTOR)  # decided: a manager's
    lower_the_clerk_limit(diagrams)
    assert deploy(engine, diagrams) == 2
    engine.start("rule_after_entry", {"customer": "x"}, business_key="NEW", actor=ACTOR)
    engine.complete("NEW:enter", {"amount": 5000}, actor=ACTOR)
    assert engine.show("NEW").data["tier"] == "clerk"
    assert [t.bpmn_id for t in engine.show("OLD").open_tasks] == ["manager_approval"]

    plan = {
        v.instance: v
        for v in engine.migrate(process="rule_after_entry", to_version=2, dry_run=True, actor=ACTOR)
    }
    assert set(plan) == {"OLD", "WAITING"}  # NEW is on version 2 already
    assert plan["WAITING"].safe
    assert not plan["WAITING"].moved
    assert not plan["OLD"].safe
    assert plan["OLD"].reasons == [
        "step 'Decide the tier' [decide_tier] already ran and version 2 changes its decision table"
    ]
    assert version_of(engine, "WAITING") == 1  # a dry run moves nothing

    done = {
        v.instance: v for v in engine.migrate(process="rule_after_entry", to_version=2, actor=ACTOR)
    }
    assert done["WAITING"].moved
    assert not done["OLD"].moved
    assert version_of(engine, "WAITING") == 2
    assert version_of(engine, "OLD") == 1
    moved = [e for e in engine.history("WAITING") if e.kind == "migrated"]
    assert [(e.data["from_version"], e.data["to_version"], e.process_version) for e in moved] == [
        (1, 2, 2)
    ]
    engine.complete("WAITING:enter", {"amount": 5000}, actor=ACTOR)
    assert engine.show("WAITING").data["tier"] == "clerk"  # the new tier
    engine.complete("OLD:manager_approval", {}, actor="boss")  # the old one, to the end
    assert engine.show("OLD").status == "completed"
    for key in ("OLD", "WAITING", "NEW"):
        report = engine.replay(key)
        assert report.clean, report.as_dict()
    assert "v1 then v2" in engine.replay("WAITING").summary()


def test_a_step_removed_where_an_instance_waits_is_refused(engine: Engine, diagrams: Path) -> None:
    deploy(engine, diagrams)
    engine.start("rule_after_entry", {"customer": "x"}, business_key="R-1", actor=ACTOR)
    engine.complete("R-1:enter", {"amount": 5000}, actor=ACTOR)  # waits for a manager
    bpmn = diagrams / "rule_after_entry.bpmn"
    text = bpmn.read_text(encoding="utf-8")
    lines = [
        line
        for line in text.splitlines()
        if 'id="manager_approval"' not in line and 'id="f4"' not in line
    ]
    bpmn.write_text(
        "\n".join(lines)
        .replace('targetRef="manager_approval"', 'targetRef="end"')
        .replace("<bpmn:incoming>f4</bpmn:incoming>", ""),
        encoding="utf-8",
    )
    assert deploy(engine, diagrams) == 2
    [view] = engine.migrate(instance="R-1", to_version=2, actor=ACTOR)
    assert not view.moved
    assert "step 'Manager approval' [manager_approval] (ready) is not in version 2" in (
        view.reasons
    )
    assert version_of(engine, "R-1") == 1
    assert [e.kind for e in engine.history("R-1")] == ["started", "task_completed"]


def test_a_renamed_step_before_where_it_waits_is_a_change_to_what_ran(
    engine: Engine, diagrams: Path
) -> None:
    """Step ids are how versions line up: a step that ran and now leads elsewhere is a
    change to what already ran."""
    deploy(engine, diagrams)
    engine.start("rule_after_entry", {"customer": "x"}, business_key="R-1", actor=ACTOR)
    bpmn = diagrams / "rule_after_entry.bpmn"
    for old in ('id="enter"', 'targetRef="enter"', 'sourceRef="enter"'):
        edit(bpmn, old, old.replace('"enter"', '"enter_amount"'))
    assert deploy(engine, diagrams) == 2
    [view] = engine.migrate(instance="R-1", to_version=2, dry_run=True, actor=ACTOR)
    assert view.reasons == [
        "step 'start' [start] already ran and version 2 changes what follows it"
    ]


def test_deadlines_already_running_keep_their_due_times(engine: Engine, diagrams: Path) -> None:
    engine.deploy([diagrams / "timers_catch_up.bpmn"], actor="owner")
    engine.start("timers_catch_up", {}, business_key="T-1", actor=ACTOR)
    before = {t.bpmn_id: (t.id, t.due_at) for t in engine.show("T-1").open_tasks}
    clock_of(engine).set(clock_of(engine).now() + timedelta(days=1))
    edit(diagrams / "timers_catch_up.bpmn", 'name="Call the customer"', 'name="Ring the customer"')
    [v2] = engine.deploy([diagrams / "timers_catch_up.bpmn"], actor="owner")
    assert v2.version == 2
    [view] = engine.migrate(instance="T-1", to_version=2, actor=ACTOR)
    assert view.moved, view.reasons
    after = {t.bpmn_id: (t.id, t.due_at) for t in engine.show("T-1").open_tasks}
    assert after == before  # the same tasks, the same deadlines
    assert engine.replay("T-1").clean


def test_only_an_admin_moves_instances_and_anyone_may_ask(engine: Engine, diagrams: Path) -> None:
    deploy(engine, diagrams)
    engine.start("rule_after_entry", {"customer": "x"}, business_key="R-1", actor="ada")
    engine.add_user("ada", ["admin"], actor="ada")
    engine.add_user("aud", ["auditor"], actor="ada")
    lower_the_clerk_limit(diagrams)
    deploy(engine, diagrams, actor="ada")
    [view] = engine.migrate(instance="R-1", to_version=2, dry_run=True, actor="aud")
    assert view.safe
    with pytest.raises(PermissionDeniedError):
        engine.migrate(instance="R-1", to_version=2, actor="aud")
    assert version_of(engine, "R-1") == 1
    [view] = engine.migrate(instance="R-1", to_version=2, actor="ada")
    assert view.moved


def test_only_running_instances_move_and_never_back(engine: Engine, diagrams: Path) -> None:
    deploy(engine, diagrams)
    engine.start("rule_after_entry", {"customer": "x"}, business_key="R-1", actor=ACTOR)
    engine.cancel("R-1", actor=ACTOR)
    with pytest.raises(InvalidStateError, match="cancelled"):
        engine.migrate(instance="R-1", to_version=1, actor=ACTOR)
    lower_the_clerk_limit(diagrams)
    deploy(engine, diagrams)
    engine.start("rule_after_entry", {"customer": "x"}, business_key="R-2", actor=ACTOR)
    [view] = engine.migrate(instance="R-2", to_version=1, actor=ACTOR)
    assert not view.moved
    assert view.reasons == ["version 1 is older than its own (2)"]
    with engine.db.read() as session:
        versions = session.scalars(select(InstanceRecord.process_version)).all()
    assert sorted(versions) == [1, 2]
