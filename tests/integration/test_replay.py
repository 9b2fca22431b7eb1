"""Replay: an instance rebuilt from its events alone, checked against every recorded
digest, and seen as it stood at any moment (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine import Engine, InputError, InvalidStateError
from engine.canonical import canonical_json, load_data
from engine.history import PendingEvent, chain
from engine.persistence import DefinitionRecord, EventRecord, InstanceRecord
from engine.spiff.compiler import SourceFile, compile_sources
from tests.support import BPMN, T0, Recorder, clock_of, fixture

ACTOR = "ops"
FILES = ("rule_after_entry.bpmn", "tier_decision.dmn")


@pytest.fixture
def diagrams(tmp_path: Path) -> Path:
    """The fixture diagrams in a folder of the test's own, to edit in place."""
    folder = tmp_path / "diagrams"
    folder.mkdir()
    for name in FILES:
        shutil.copy(BPMN / name, folder / name)
    return folder


def play(engine: Engine, diagrams: Path, key: str = "R-1", amount: int = 5000) -> None:
    """Start, enter an amount (a manager's tier), approve: three commands, an hour apart."""
    engine.deploy([diagrams / n for n in FILES], actor="owner")
    clock = clock_of(engine)
    engine.start("rule_after_entry", {"customer": "regular"}, business_key=key, actor=ACTOR)
    clock.set(clock.now() + timedelta(hours=1))
    engine.complete(f"{key}:enter", {"amount": amount}, actor=ACTOR)
    clock.set(clock.now() + timedelta(hours=1))
    engine.complete(f"{key}:manager_approval", {"ok": True}, actor="boss")


def edit_in_place(engine: Engine, diagrams: Path, *, rehash: bool) -> None:
    """Make amounts under 10,000 a clerk's, and store the result as version 1 itself:
    the diagram changed under a version instances already ran."""
    dmn = diagrams / "tier_decision.dmn"
    text = dmn.read_text(encoding="utf-8")
    assert '<inputEntry id="r_clerk_amount"><text>&lt; 1000</text>' in text
    dmn.write_text(
        text.replace(
            '<inputEntry id="r_clerk_amount"><text>&lt; 1000</text>',
            '<inputEntry id="r_clerk_amount"><text>&lt; 10000</text>',
        ),
        encoding="utf-8",
    )
    compiled = compile_sources(
        [SourceFile.named(str(diagrams / n), (diagrams / n).read_bytes()) for n in FILES]
    )
    process = compiled.processes["rule_after_entry"]
    values: dict[str, str] = {"spec_json": process.spec_json}
    if rehash:
        values["content_hash"] = process.content_hash
    with engine.db.transaction() as session:
        session.execute(
            update(DefinitionRecord)
            .where(DefinitionRecord.process_id == "rule_after_entry")
            .values(**values)
        )


def test_a_history_replays_cleanly_event_by_event(engine: Engine, diagrams: Path) -> None:
    play(engine, diagrams)
    report = engine.replay("R-1")
    assert report.clean, report.as_dict()
    assert len(report.replayed.applied) == report.total == len(engine.history("R-1"))
    assert report.summary() == (
        f"R-1: replayed {report.total} events under rule_after_entry v1; every state "
        "matched its recorded digest."
    )
    assert report.replayed.status == "completed"


def test_a_diagram_edited_in_place_is_caught_with_the_step_and_the_data_key(
    engine: Engine, diagrams: Path
) -> None:
    play(engine, diagrams)
    edit_in_place(engine, diagrams, rehash=False)
    report = engine.replay("R-1")
    assert not report.clean
    assert any("does not match its content hash" in p for p in report.problems)
    divergence = report.replayed.divergence
    assert divergence is not None
    completed = [e for e in engine.history("R-1") if e.kind == "task_completed"]
    assert divergence.seq == completed[0].seq  # entering the amount ran the table
    assert divergence.step == "Enter the amount"
    assert 'data key \'tier\': recorded "manager", rebuilt "clerk"' in divergence.details
    assert any(
        "the history goes on at 'Manager approval' [manager_approval]" in line
        for line in divergence.details
    )
    assert any(
        "waits at 'Clerk approval' [clerk_approval, user]" in line for line in divergence.details
    )


def test_a_definition_rehashed_in_place_differs_from_the_hash_its_start_recorded(
    engine: Engine, diagrams: Path
) -> None:
    play(engine, diagrams)
    edit_in_place(engine, diagrams, rehash=True)
    report = engine.replay("R-1")
    assert any("the instance started under" in p for p in report.problems), report.problems
    assert report.replayed.divergence is not None


def test_a_forged_history_that_verifies_is_caught_by_replay(engine: Engine, diagrams: Path) -> None:
    """Someone rewrites what was entered and recomputes every hash: the chain holds,
    the replay does not."""
    play(engine, diagrams)
    with engine.db.transaction() as session:
        instance = session.scalars(select(InstanceRecord)).one()
        events = list(
            session.scalars(
                select(EventRecord)
                .where(EventRecord.instance_id == instance.id)
                .order_by(EventRecord.seq)
            )
        )
        pending = []
        for e in events:
            data = load_data(e.data)
            if e.kind == "task_completed" and e.bpmn_id == "enter":
                data["data"] = {"amount": 500}  # a clerk's amount, then
            pending.append(
                PendingEvent(
                    e.kind, e.at, e.actor, data, e.state_digest, e.bpmn_id, e.task_name, e.task_id
                )
            )
        forged = chain(
            pending,
            instance_uid=instance.uid,
            process_id=instance.process_id,
            process_version=instance.process_version,
            first_seq=1,
            prev_hash="0" * 64,
        )
        for record, new in zip(events, forged, strict=True):
            record.data, record.hash, record.prev_hash = new.data, new.hash, new.prev_hash
        instance.head_hash = forged[-1].hash
    assert engine.verify("R-1") is None  # the chain was recomputed: it holds
    report = engine.replay("R-1")
    divergence = report.replayed.divergence
    assert divergence is not None
    assert divergence.step == "Enter the amount"
    assert "data key 'amount': recorded 5000, rebuilt 500" in divergence.details


def test_the_instance_as_it_stood_after_an_event_and_at_a_time(
    engine: Engine, diagrams: Path
) -> None:
    play(engine, diagrams)
    events = engine.history("R-1")
    entered = next(e for e in events if e.kind == "task_completed")
    view, report = engine.as_it_stood("R-1", until_seq=entered.seq)
    assert report.clean
    assert view.status == "running"
    assert view.data["tier"] == "manager"
    assert [t.bpmn_id for t in view.open_tasks] == ["manager_approval"]
    # The id is the one the task had (the history names it when it was completed).
    approved = next(e for e in events if e.bpmn_id == "manager_approval")
    assert view.open_tasks[0].id == approved.task_id
    assert [t.bpmn_id for t in view.done_tasks] == ["enter"]

    view, _ = engine.as_it_stood("R-1", at=T0 + timedelta(minutes=30))
    assert view.event_count == 1
    assert [t.bpmn_id for t in view.open_tasks] == ["enter"]
    assert "amount" not in view.data

    view, _ = engine.as_it_stood("R-1", at=T0 + timedelta(days=1))
    assert view.status == "completed"
    assert view.open_tasks == []
    assert view.event_count == len(events)

    with pytest.raises(InputError, match="did not exist yet"):
        engine.as_it_stood("R-1", at=T0 - timedelta(seconds=1))


def test_what_the_history_records_is_what_replay_needs(engine: Engine, diagrams: Path) -> None:
    """Each change records its data changes, so a divergence can name the key."""
    play(engine, diagrams)
    changed = {e.kind: e.data.get("changed") for e in engine.history("R-1")}
    assert changed["started"] == {}  # the start ran no step that set data
    assert canonical_json(changed["task_completed"]) == canonical_json({"ok": [None, True]})


def test_an_archived_history_is_replayed_from_its_archive(
    engine: Engine, diagrams: Path, tmp_path: Path
) -> None:
    play(engine, diagrams)
    folder = tmp_path / "archive"
    engine.audit_archive(folder, before=T0 + timedelta(days=1), actor=ACTOR)
    with pytest.raises(InvalidStateError, match="were archived to") as caught:
        engine.replay("R-1")
    assert f"--export {folder}" in str(caught.value.hint)
    report = engine.replay("R-1", export=folder)
    assert report.clean, report.as_dict()
    view, _ = engine.as_it_stood("R-1", until_seq=2, export=folder)
    assert [t.bpmn_id for t in view.open_tasks] == ["manager_approval"]
    # An archive changed afterwards no longer holds.
    events = folder / "events.jsonl"
    events.write_text(events.read_text().replace('\\"amount\\":5000', '\\"amount\\":500'))
    report = engine.replay("R-1", export=folder)
    assert any("does not match the digest" in p for p in report.problems), report.problems
    assert report.replayed.divergence is not None


def test_timers_and_their_handlers_replay_as_of_when_they_fell_due_without_calling_them(
    engine: Engine, recorder: Recorder
) -> None:
    """A reminder and a lapse that fell due days apart fire in one run; what they start
    runs as of their due times, which the events record, and replay feeds the handlers'
    recorded results instead of calling them."""
    engine.deploy(fixture("timers_catch_up.bpmn"), actor="owner")
    engine.start("timers_catch_up", {}, business_key="T-1", actor=ACTOR)
    clock_of(engine).set(T0 + timedelta(days=21))
    engine.run_due(actor="timer")
    clocks = [e.data.get("clock") for e in engine.history("T-1") if e.kind == "handler_result"]
    assert clocks  # as of each timer's due time, not day 21:
    assert all(clocks), clocks
    calls = len(recorder.calls)
    view, report = engine.as_it_stood("T-1", at=T0 + timedelta(days=21))
    assert report.clean, report.as_dict()
    assert len(recorder.calls) == calls
    assert view.data == engine.show("T-1").data
    assert [t.bpmn_id for t in view.open_tasks] == [
        t.bpmn_id for t in engine.show("T-1").open_tasks
    ]


def test_a_failed_attempt_and_its_retry_replay_cleanly(engine: Engine, recorder: Recorder) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    recorder.failures["test.double"] = RuntimeError("down")
    engine.start("review_call", {"amount": 3}, business_key="S-1", actor=ACTOR)
    engine.complete("S-1:review", {}, actor=ACTOR)
    failed, _ = engine.as_it_stood("S-1", until_seq=len(engine.history("S-1")))
    assert [(t.state, t.attempts) for t in failed.open_tasks if t.kind == "service"] == [
        ("FAILED", 1)
    ]
    assert failed.incident_count == 1
    del recorder.failures["test.double"]
    engine.retry("S-1", actor=ACTOR)
    assert engine.replay("S-1").clean
