"""The engine's core promises, on SQLite and PostgreSQL: versions, worklists, handlers,
history and the schema."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from support import BPMN, Recorder, clock_of, fixture

from engine import (
    Engine,
    InputError,
    InstanceNotFoundError,
    InvalidStateError,
    ProcessValidationError,
    TaskNotFoundError,
)
from engine.spiff import runtime

# -- 1. deploy with versions ---------------------------------------------------------


def _renamed(tmp_path: Path, new_name: str) -> Path:
    source = (BPMN / "review_call.bpmn").read_text()
    target = tmp_path / "src" / "review_call.bpmn"
    target.parent.mkdir(exist_ok=True)
    target.write_text(source.replace('name="Review it"', f'name="{new_name}"'))
    return target


def test_identical_redeploy_creates_no_version(engine: Engine) -> None:
    first = engine.deploy(fixture("review_call.bpmn"), actor="owner")
    again = engine.deploy(fixture("review_call.bpmn"), actor="owner")
    assert [(d.process_id, d.version, d.created) for d in first] == [("review_call", 1, True)]
    assert [(d.process_id, d.version, d.created) for d in again] == [("review_call", 1, False)]
    assert [(p.process_id, p.version) for p in engine.processes(all_versions=True)] == [
        ("review_call", 1)
    ]


def test_running_instances_keep_their_version_and_survive_the_file(
    engine: Engine, tmp_path: Path
) -> None:
    path = _renamed(tmp_path, "Review it")
    engine.deploy([path], actor="owner")
    old = engine.start("review_call", {"amount": 7}, business_key="OLD", actor="ann")

    _renamed(tmp_path, "Check the work")
    [deployed] = engine.deploy([path], actor="owner")
    assert (deployed.version, deployed.created) == (2, True)
    new = engine.start("review_call", {"amount": 7}, business_key="NEW", actor="ann")

    assert old.instance.process_version == 1
    assert new.instance.process_version == 2
    assert [t.name for t in new.instance.open_tasks if t.kind == "user"] == ["Check the work"]

    path.unlink()  # everything the instance needs is in the database
    fresh = Engine(engine.db, registry=engine.registry, clock=engine.clock)
    old_task = next(t for t in fresh.show("OLD").open_tasks if t.kind == "user")
    assert old_task.name == "Review it"
    done = fresh.complete(old_task.id, {}, actor="ann")
    assert done.instance.status == "completed"
    assert {e.process_version for e in fresh.history("OLD")} == {1}
    versions = [(p.version, p.latest) for p in fresh.processes(all_versions=True)]
    assert versions == [(1, False), (2, True)]


def test_starting_an_explicit_older_version(engine: Engine, tmp_path: Path) -> None:
    path = _renamed(tmp_path, "First")
    engine.deploy([path], actor="owner")
    _renamed(tmp_path, "Second")
    engine.deploy([path], actor="owner")
    result = engine.start("review_call", {"amount": 1}, actor="ann", version=1)
    assert result.instance.process_version == 1
    with pytest.raises(Exception, match="version 9"):
        engine.start("review_call", {"amount": 1}, actor="ann", version=9)


def test_long_values_are_compressed_with_lz4_on_postgresql(engine: Engine) -> None:
    """Revision 0011: a state, its data and an event's data written after it are kept
    with lz4 where the server has it (docs/benchmarks.md: reading data three times as
    fast as with pglz)."""
    if engine.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not compress values")
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 1, "note": "x" * 5000}, actor="ann")
    with engine.db.engine.connect() as conn:
        available = conn.execute(
            text(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
                "AND 'lz4' = ANY(enumvals)"
            )
        ).first()
        found = conn.execute(
            text("SELECT pg_column_compression(state), pg_column_compression(data) FROM instance")
        ).one()
        events = conn.execute(
            text("SELECT DISTINCT pg_column_compression(data) FROM event")
        ).scalars()
    expected = "lz4" if available else "pglz"
    assert tuple(found) == (expected, expected)
    assert expected in set(events)


def test_unknown_process_suggests_the_closest(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    with pytest.raises(Exception, match="no deployed process 'review_cal'") as caught:
        engine.start("review_cal", {}, actor="ann")
    assert "review_call" in (getattr(caught.value, "hint", "") or "")


def test_a_failed_validation_deploys_nothing(engine: Engine, tmp_path: Path) -> None:
    good = tmp_path / "review_call.bpmn"
    good.write_text((BPMN / "review_call.bpmn").read_text())
    bad = tmp_path / "broken.bpmn"
    bad.write_text("<bpmn:definitions xmlns:bpmn='http://www.omg.org/spec/BPMN/20100524/MODEL'>")
    with pytest.raises(ProcessValidationError) as caught:
        engine.deploy([good, bad], actor="owner")
    assert caught.value.problems[0].file == "broken.bpmn"
    assert engine.processes() == []


def test_an_unknown_operator_is_refused_with_a_suggestion(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "review_call.bpmn"
    path.write_text((BPMN / "review_call.bpmn").read_text().replace("test.double", "test.doubel"))
    with pytest.raises(ProcessValidationError) as caught:
        engine.deploy([path], actor="owner")
    [problem] = caught.value.problems
    assert "test.doubel" in problem.message
    assert "did you mean 'test.double'" in problem.message
    assert (problem.file, problem.element) == ("review_call.bpmn", "call")
    assert problem.line is not None
    assert problem.line > 1
    assert engine.processes() == []


# -- 2. run: start, wait, complete, cancel --------------------------------------------


def test_business_keys_are_unique_and_instances_found_by_key_or_number(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    first = engine.start("review_call", {"amount": 1}, business_key="K-1", actor="ann")
    with pytest.raises(InputError, match="already used"):
        engine.start("review_call", {"amount": 2}, business_key="K-1", actor="ann")
    assert engine.show(str(first.instance.id)).business_key == "K-1"
    assert engine.show(f"#{first.instance.id}").business_key == "K-1"
    with pytest.raises(InstanceNotFoundError):
        engine.show("K-404")
    with pytest.raises(InputError):
        engine.start("review_call", {}, business_key="123", actor="ann")


def test_cancel_stops_everything(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 7}, business_key="C-1", actor="ann")
    cancelled = engine.cancel("C-1", actor="boss", reason="customer withdrew")
    assert cancelled.instance.status == "cancelled"
    assert cancelled.instance.open_tasks == []
    shown = engine.show("C-1")
    assert {t.state for t in shown.done_tasks} == {"CANCELLED"}
    assert shown.next_timer_at is None
    assert engine.tasks() == []
    with pytest.raises(InvalidStateError, match="cancelled"):
        engine.comment("C-1", "too late", actor="ann")
    last = engine.history("C-1")[-1]
    assert (last.kind, last.actor, last.data) == (
        "cancelled",
        "boss",
        {"reason": "customer withdrew"},
    )


def test_start_data_must_be_an_object_with_plain_names(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    with pytest.raises(InputError):
        engine.start("review_call", ["not", "an", "object"], actor="ann")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="__class__"):
        engine.start("review_call", {"__class__": 1}, actor="ann")


# -- 3. lanes are roles; the worklist reads the task table ----------------------------


def test_worklist_filters_by_role_without_loading_instances(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.deploy(fixture("parallel_pair.bpmn"), actor="owner")
    for number in range(3):
        engine.start("parallel_pair", {}, business_key=f"W-{number}", actor="ann")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the worklist must not deserialise instances")

    monkeypatch.setattr(runtime.Run, "restore", refuse)
    left = engine.tasks(role="left")
    right = engine.tasks(role="right")
    everything = engine.tasks()

    assert sorted((t.business_key, t.bpmn_id, t.role) for t in left) == [
        (f"W-{n}", "left", "left") for n in range(3)
    ]
    assert {t.bpmn_id for t in right} == {"right"}
    assert len(everything) == 6
    assert engine.tasks(role="nobody") == []


def test_worklist_query_uses_the_state_role_index(engine: Engine) -> None:
    if engine.db.is_sqlite:
        with engine.db.engine.connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM task WHERE state = 'READY' AND role = 'left'"
                )
            ).all()
        assert "ix_task_state_role" in " ".join(str(row) for row in plan)
    else:
        with engine.db.engine.connect() as conn:
            indexes = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'task'")
            ).scalars()
            assert any("(state, role)" in definition for definition in indexes)


def test_tasks_inside_a_call_activity_take_a_lane_or_their_caller_s(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    started = engine.start("review_call", {"amount": 1}, business_key="L-1", actor="ann")
    assert {t.role for t in started.instance.open_tasks} == {"clerk"}


# -- 4. handlers --------------------------------------------------------------------


def test_handler_gets_params_and_a_stable_context(engine: Engine, recorder: Recorder) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    recorder.failures["test.double"] = RuntimeError("ledger offline")
    started = engine.start("review_call", {"amount": 21}, business_key="H-1", actor="ann")
    review = next(t for t in started.instance.open_tasks if t.kind == "user")
    failed = engine.complete(review.id, {}, actor="ann")

    assert failed.instance.status == "running"
    assert failed.failures
    assert "ledger offline" in failed.failures[0]
    [call] = [t for t in failed.instance.open_tasks if t.kind == "service"]
    assert (call.state, call.attempts, call.bpmn_id) == ("FAILED", 1, "call")
    assert "RuntimeError: ledger offline" in (call.error or "")
    assert engine.show("H-1").incident_count == 1
    assert engine.show("H-1").data["amount"] == 21  # nothing else was lost

    del recorder.failures["test.double"]
    retried = engine.retry("H-1", actor="ops")
    assert retried.instance.status == "completed"
    assert engine.show("H-1").incident_count == 0

    (op1, params1, ctx1), (op2, params2, ctx2) = recorder.calls
    assert op1 == op2 == "test.double"
    assert params1 == params2 == {"value": 21}
    assert ctx1.idempotency_key == ctx2.idempotency_key  # the same key on every attempt
    assert ctx1.idempotency_key.startswith(started.instance.uid)
    assert (ctx1.attempt, ctx2.attempt) == (1, 2)
    assert (ctx1.business_key, ctx1.process_id, ctx1.process_version) == ("H-1", "review_call", 1)
    assert ctx1.instance_id == started.instance.id
    assert ctx2.now == clock_of(engine).now()
    assert ctx2.actor == "ops"
    kinds = [e.kind for e in engine.history("H-1")]
    assert kinds == [
        "started",
        "task_completed",
        "handler_failed",
        "retried",
        "handler_result",
        "completed",
    ]
    with pytest.raises(InvalidStateError):
        engine.retry("H-1", actor="ops")


def test_retry_without_failures_is_refused(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 1}, business_key="R-1", actor="ann")
    with pytest.raises(InvalidStateError, match="no failed tasks"):
        engine.retry("R-1", actor="ops")


def test_a_handler_returning_something_unstorable_fails_its_task(
    engine: Engine, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    monkeypatch.setattr(recorder, "double", lambda params, ctx: {"bad": object()})
    engine.registry = recorder.registry()
    engine.start("review_call", {"amount": 1}, business_key="U-1", actor="ann")
    result = engine.complete("U-1:review", {}, actor="ann")
    assert result.failures
    assert "no canonical form" in result.failures[0]


# -- 5. timers ----------------------------------------------------------------------


def test_due_timers_fire_only_when_due(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 1}, business_key="T-1", actor="ann")
    clock = clock_of(engine)
    due = clock.now() + timedelta(days=2)
    assert engine.show("T-1").next_timer_at == due

    clock.set(due - timedelta(seconds=1))
    assert engine.run_due(actor="cron") == []
    clock.set(due + timedelta(seconds=1))
    [fired] = engine.run_due(actor="cron")
    assert fired.error is None
    assert fired.result is not None
    assert [e.kind for e in fired.result.events] == ["timer_fired"]
    assert fired.result.events[0].at == due + timedelta(seconds=1)
    assert engine.run_due(actor="cron") == []  # fired once


# -- 7. history ---------------------------------------------------------------------


def test_history_records_every_change_with_its_version_and_digest(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    started = engine.start("review_call", {"amount": 6}, business_key="E-1", actor="ann")
    clock_of(engine).set(clock_of(engine).now() + timedelta(hours=1))
    engine.complete("E-1:review", {"ok": True}, actor="bob")
    events = engine.history("E-1")

    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [(e.kind, e.actor, e.bpmn_id) for e in events] == [
        ("started", "ann", None),
        ("task_completed", "bob", "review"),
        ("handler_result", "bob", "call"),
        ("completed", "bob", None),
    ]
    assert events[0].data["data"] == {"amount": 6}
    assert events[1].data["data"] == {"ok": True}
    assert events[2].data["params"] == {"value": 6}
    assert events[2].data["result"] == {"value": 12}
    assert events[1].at == started.events[0].at + timedelta(hours=1)
    assert {(e.process_id, e.process_version) for e in events} == {("review_call", 1)}
    assert all(len(e.state_digest) == 64 and len(e.hash) == 64 for e in events)
    assert events[2].state_digest != events[1].state_digest
    assert events[3].state_digest == events[2].state_digest  # 'completed' changes nothing


def test_state_digests_do_not_depend_on_task_ids(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    for key in ("D-1", "D-2"):
        engine.start("review_call", {"amount": 3}, business_key=key, actor="ann")
        engine.complete(f"{key}:review", {"ok": True}, actor="ann")
    first, second = engine.history("D-1"), engine.history("D-2")
    assert [e.state_digest for e in first] == [e.state_digest for e in second]
    assert {e.task_id for e in first if e.task_id} != {e.task_id for e in second if e.task_id}
    assert [e.hash for e in first] != [e.hash for e in second]  # chained per instance


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine.db.engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()).lower())

    return seen


def test_a_step_never_reads_or_rewrites_the_history(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 3}, business_key="S-1", actor="ann")
    seen = _statements(engine)
    for number in range(5):
        engine.comment("S-1", f"note {number}", actor="ann")
    engine.complete("S-1:review", {}, actor="ann")

    touching = [s for s in seen if re.search(r"\b(from|into|update|join)\s+event\b", s)]
    assert touching, "the step appended no events"
    assert all(s.startswith("insert into event") for s in touching), touching


def test_events_are_only_ever_inserted(engine: Engine, recorder: Recorder) -> None:
    seen = _statements(engine)
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    recorder.failures["test.double"] = RuntimeError("down")
    engine.start("review_call", {"amount": 3}, business_key="S-2", actor="ann")
    engine.complete("S-2:review", {}, actor="ann")
    del recorder.failures["test.double"]
    engine.retry("S-2", actor="ann")
    assert not [s for s in seen if s.startswith(("update event", "delete from event"))]


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "forge-hash"])
def test_any_edit_to_the_history_breaks_the_chain(engine: Engine, tamper: str) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 3}, business_key="V-1", actor="ann")
    engine.complete("V-1:review", {"ok": True}, actor="ann")
    assert engine.verify("V-1") is None
    statements = {
        "edit": ['UPDATE event SET data = \'{"data":{"ok":false}}\' WHERE seq = 2'],
        "delete": ["DELETE FROM event WHERE seq = 3"],
        "reorder": [
            "UPDATE event SET seq = -2 WHERE seq = 2",
            "UPDATE event SET seq = 2 WHERE seq = 3",
            "UPDATE event SET seq = 3 WHERE seq = -2",
        ],
        "forge-hash": ["UPDATE event SET actor = 'mallory' WHERE seq = 2"],
    }
    with engine.db.engine.begin() as conn:
        for statement in statements[tamper]:
            conn.exec_driver_sql(statement)
    broken = engine.verify("V-1")
    assert broken is not None
    assert broken.seq in (2, 3)


# -- 6. schema ------------------------------------------------------------------------


def test_init_is_idempotent_and_the_models_match_the_migrations(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import MetaData

    from engine.persistence import Base

    before, after = engine.init()  # the fixture initialised it already: nothing to do
    assert before == after
    assert engine.db.schema_status() == (after, after)
    assert "0012" in after.split()  # the engine's branch, beside any extension's
    everything = MetaData()
    for metadata in [Base.metadata, *(e.metadata for e in engine.db.extensions if e.metadata)]:
        for table in metadata.tables.values():
            table.to_metadata(everything)
    with engine.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, everything) == []


def test_an_empty_database_asks_for_init(tmp_path: Path) -> None:
    from engine import ConfigurationError, Registry

    engine = Engine(f"sqlite:///{tmp_path / 'empty.db'}", registry=Registry())
    with pytest.raises(ConfigurationError, match="no artreturns schema") as caught:
        engine.processes()
    assert "artreturns init" in (caught.value.hint or "")


def test_unknown_task_references(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 1}, business_key="Q-1", actor="ann")
    with pytest.raises(TaskNotFoundError):
        engine.complete("Q-1:nope", {}, actor="ann")
    with pytest.raises(TaskNotFoundError):
        engine.complete("deadbeef", {}, actor="ann")
    with pytest.raises(InputError):
        engine.complete("not a task!", {}, actor="ann")


def test_sqlite_file_settings(tmp_path: Path) -> None:
    from engine.persistence import Database

    database = Database(str(tmp_path / "plain-path.db"))
    assert database.is_sqlite
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()
    raw = create_engine(f"sqlite:///{tmp_path / 'plain-path.db'}")
    raw.dispose()


def test_with_inline_handlers_off_a_service_task_waits_queued(
    make_engine: Any, recorder: Recorder
) -> None:
    from engine import Settings

    engine = make_engine(settings=Settings(inline_handlers=False))
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 2}, business_key="J-1", actor="ann")
    waiting = engine.complete("J-1:review", {}, actor="ann")

    assert recorder.calls == []
    assert waiting.instance.status == "running"
    [queued] = engine.tasks(kinds=("service",), states=("QUEUED",))
    assert (queued.bpmn_id, queued.operator, queued.business_key) == ("call", "test.double", "J-1")
    assert [e.kind for e in engine.history("J-1")] == ["started", "task_completed"]


def test_decimals_and_dates_from_handlers_survive_storage_and_show_as_text(
    engine: Engine, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date
    from decimal import Decimal

    def priced(params: Any, ctx: Any) -> dict[str, Any]:
        return {"value": Decimal("1200.50"), "on": date(2026, 11, 2)}

    monkeypatch.setattr(recorder, "double", priced)
    engine.registry = recorder.registry()
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 1}, business_key="M-1", actor="ann")
    engine.complete("M-1:review", {}, actor="ann")

    fresh = Engine(engine.db, registry=engine.registry, clock=engine.clock)  # from storage
    shown = fresh.show("M-1")
    assert shown.data["echo"] == {"value": Decimal("1200.50"), "on": date(2026, 11, 2)}
    assert shown.to_dict()["data"]["echo"] == {"value": "1200.50", "on": "2026-11-02"}
    result = next(e for e in fresh.history("M-1") if e.kind == "handler_result")
    assert result.data["result"] == {
        "value": {"$decimal": "1200.50"},
        "on": {"$date": "2026-11-02"},
    }


def test_a_service_task_without_result_variable_merges_its_result(
    engine: Engine, tmp_path: Path
) -> None:
    source = (BPMN / "review_call.bpmn").read_text()
    path = tmp_path / "review_call.bpmn"
    path.write_text(source.replace(' resultVariable="echo"', "").replace('echo["value"]', "value"))
    engine.deploy([path], actor="owner")
    engine.start("review_call", {"amount": 6}, business_key="RV-1", actor="ann")
    engine.complete("RV-1:review", {}, actor="ann")
    data = engine.show("RV-1").data
    assert data["value"] == 12  # the handler's field, at the top of the data
    assert not any(key.startswith("spiff__") for key in data)


def test_state_and_stored_data_keep_exact_values(make_engine: Any) -> None:
    """Integers beyond 64 bits (which orjson does not write) and data that looks like a
    tag survive the state's JSON and the data stored beside it, in a fresh engine too,
    and `show` gives the same data whether it reads the stored data or restores."""
    engine = make_engine()
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    data = {"amount": 3, "big": 2**80, "price": {"$decimal": "1.50"}}
    engine.start("review_call", data, business_key="X-1", actor="ann")
    fresh = make_engine()
    assert {k: fresh.show("X-1").data[k] for k in data} == data
    fresh.complete("X-1:review", {"ok": True}, actor="ann")
    stored = make_engine().show("X-1").data
    with fresh.db.engine.begin() as conn:
        conn.execute(text("UPDATE instance SET data = NULL"))
    assert make_engine().show("X-1").data == stored
    assert {k: stored[k] for k in data} == data
