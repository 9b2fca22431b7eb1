"""A database of the first schema (revision 0001), written by the code of that time with
returns in flight, is upgraded by `artreturns init` and its returns carry on to their end
(SQLite and PostgreSQL).

The fixtures in tests/fixtures/schema/ were made by commit 0984a66, the last one whose
newest revision was 0001 (its README says how). The test loads one into an empty
database, runs today's `init` on it and checks that nothing in flight was lost: the
same instances with the same status, state, open tasks, data and history, a history
that still verifies, and each return taken to its end with today's commands.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

import cli as cli_module
from engine import ConfigurationError, Engine, FixedClock
from engine.persistence.database import Database
from engine.spiff import SERIALIZER_VERSION
from tests.support import Recorder, clock_of

FIXTURES = Path(__file__).parents[1] / "fixtures" / "schema"
#: The schema the PostgreSQL dump was taken from; renamed to the test's own on loading.
DUMPED_SCHEMA = "artreturns_r0001"
FIRST = "0001 r0001"

IN_FLIGHT = ("RMA-1", "RMA-2", "RMA-4", "RMA-5", "FACTS-1")
ENDED = ("RMA-3", "RMA-6")

ORDERS_CSV = (
    "order_number,channel,jurisdiction,currency,sold_at,delivered_at,payment_method,payer,"
    "shipping_charge,customer_name,customer_email,customer_locale,customer_address,"
    "artwork_id,title,artist,category,price,custom_made,indivisible_set,auction_lot,"
    "guarantee_years,authenticity_disclaimer,set_id,condition_grade,condition_notes,"
    "certificate,accessories\n"
    "A-2001,online_shop,EU,EUR,2026-10-20,2026-10-24,card,Ann Weber,0,Ann Weber,"
    'ann@example.com,de,"1 Hauptstrasse, Berlin",W-201,Harbour at dusk,Mia Roth,painting,'
    "1450.00,no,no,no,0,no,,excellent,,,\n"
)


def load_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "r0001.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURES / "r0001.sqlite.sql").read_text(encoding="utf-8"))
    conn.close()
    return f"sqlite:///{path}"


def load_postgres(url: URL) -> str:
    """The dump restored into the test's own (empty) schema."""
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    dump = (FIXTURES / "r0001.postgresql.sql").read_text(encoding="utf-8")
    script = "\n".join(line for line in dump.splitlines() if not line.startswith("--"))
    script = script.replace(f"CREATE SCHEMA {DUMPED_SCHEMA};", "")
    script = script.replace(f"{DUMPED_SCHEMA}.", f'"{schema}".')
    assert DUMPED_SCHEMA not in script
    engine = create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            raw.cursor().execute(script)  # no parameters: one batch of statements
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of revision 0001 with returns in flight, as the code of 0001 left it."""
    if request.param == "sqlite":
        return load_sqlite(tmp_path)
    url: URL = request.getfixturevalue("pg_url")
    return load_postgres(url)


class Cli:
    def __init__(self, db: str) -> None:
        self.db = db

    def __call__(self, *args: str, user: str = "alice", now: str | None = None) -> str:
        options = ["--db", self.db, "--as", user]
        if now is not None:
            options += ["--now", now]
        result = CliRunner().invoke(cli_module.cli, [*options, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def json(self, *args: str, now: str | None = None) -> Any:
        return json.loads(self(*args, "--json", now=now))


def snapshot(db: str) -> dict[str, Any]:
    """What the rows hold, read with plain SQL (the same before and after the upgrade)."""
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            instances = {
                r.business_key: (r.uid, r.status, r.process_version, r.state, r.event_count)
                for r in conn.execute(
                    text(
                        "SELECT business_key, uid, status, process_version, state, "
                        "event_count, head_hash FROM instance"
                    )
                )
            }
            tasks = sorted(
                tuple(str(v) for v in r)
                for r in conn.execute(
                    text(
                        "SELECT i.business_key, t.id, t.bpmn_id, t.state, t.due_at, "
                        "t.attempts, t.error FROM task t JOIN instance i "
                        "ON i.id = t.instance_id WHERE t.ended_at IS NULL"
                    )
                )
            )
            events = sorted(
                tuple(str(v) for v in r)
                for r in conn.execute(text("SELECT instance_id, seq, kind, data, hash FROM event"))
            )
    finally:
        engine.dispose()
    return {"instances": instances, "tasks": tasks, "events": events}


def test_a_database_of_the_first_schema_is_upgraded_with_its_returns_intact(
    old_db: str, tmp_path: Path
) -> None:
    run = Cli(old_db)
    before = snapshot(old_db)
    assert Database(old_db).schema_status()[0] == FIRST
    assert {k: v[1] for k, v in before["instances"].items()} == {
        **dict.fromkeys(IN_FLIGHT, "running"),
        "RMA-3": "completed",
        "RMA-6": "cancelled",
    }

    out = run("init", user="admin", now="2026-11-05T08:00:00Z")
    current, newest = Database(old_db).schema_status()
    assert current == newest != FIRST
    assert f"schema {FIRST} -> {newest}" in out
    assert snapshot(old_db) == before  # nothing in flight was touched

    # `init` again changes nothing and logs nothing.
    assert "is up to date" in run("init", user="admin", now="2026-11-05T08:30:00Z")
    [logged] = run.json("operations")
    assert (logged["operation"], logged["actor"], logged["outcome"]) == ("init", "admin", "done")
    assert logged["details"]["schema"] == [FIRST, newest]
    assert snapshot(old_db) == before

    # Today's code reads every instance as the code of 0001 left it.
    shown = {key: run.json("show", key) for key in (*IN_FLIGHT, *ENDED)}
    assert {k: v["status"] for k, v in shown.items()} == {
        k: v[1] for k, v in before["instances"].items()
    }
    open_now = sorted(
        (v["business_key"], t["id"], t["bpmn_id"], t["state"])
        for v in shown.values()
        for t in v["open_tasks"]
    )
    assert open_now == sorted((t[0], t[1], t[2], t[3]) for t in before["tasks"])
    assert [t["bpmn_id"] for t in shown["RMA-2"]["open_tasks"]] == ["review", "review_overdue"]
    assert shown["RMA-2"]["next_timer_at"] == "2026-11-05T09:20:00+00:00"
    assert shown["RMA-2"]["data"]["request"]["description"] == "Crack in the glaze"
    assert shown["RMA-2"]["data"]["completeness"] == {"complete": True, "missing": []}
    assert shown["RMA-4"]["data"]["completeness"] == {"complete": False, "missing": ["artwork"]}
    assert shown["RMA-3"]["data"]["approved"] is True
    [failed] = shown["FACTS-1"]["open_tasks"]
    assert failed["state"] == "FAILED"
    assert "order 'A-2001' is not on record" in failed["error"]
    for key in (*IN_FLIGHT, *ENDED):
        assert "history intact" in run("verify", key)
        # Today's code, run from the events alone, reaches the states 0001 recorded.
        assert "every state matched its recorded digest" in run("replay", key)

    # Each return in flight carries on to its end under today's code.
    t = "2026-11-05T09:00:00Z"
    fields = ("order_number=A-1001", "artwork=W-1", "type=return", "reason=defective")
    run("complete", "RMA-1:register", *[a for f in fields for a in ("--set", f)], now=t)
    run("complete", "RMA-1:review", "--set", "approved=true", now=t)
    # RMA-2's review timer (due 09:20 on the 5th) fires: the review is escalated.
    assert run.json("run-due", now="2026-11-05T10:00:00Z")[0]["instance"] == "RMA-2"
    run("complete", "RMA-2:review_escalated", "--set", "approved=false", user="carol", now=t)
    run("complete", "RMA-4:request_information", now=t)
    run("complete", "RMA-5:review_escalated", "--set", "approved=true", user="carol", now=t)
    # FACTS-1 failed because its order was not on record: import it, then retry.
    csv = tmp_path / "orders.csv"
    csv.write_text(ORDERS_CSV, encoding="utf-8")
    run("orders", "import", str(csv), now=t)
    run("retry", "FACTS-1", now=t)
    facts = run.json("show", "FACTS-1")
    assert facts["data"]["facts"]["currency"] == "EUR"
    run("complete", "FACTS-1:confirm", now=t)

    after = {key: run.json("show", key) for key in (*IN_FLIGHT, *ENDED)}
    assert {k: v["status"] for k, v in after.items()} == {
        **dict.fromkeys(("RMA-1", "RMA-2", "RMA-3", "RMA-4", "RMA-5", "FACTS-1"), "completed"),
        "RMA-6": "cancelled",
    }
    assert after["RMA-2"]["data"]["approved"] is False
    assert after["RMA-2"]["data"]["request"]["order_number"] == "A-1002"
    for key in (*IN_FLIGHT, *ENDED):
        assert "history intact" in run("verify", key)
        assert "every state matched its recorded digest" in run("replay", key)
        assert run.json("history", key)[0]["kind"] == "started"
    # The events written by the code of 0001 are still there, unchanged, first.
    events_now = set(snapshot(old_db)["events"])
    assert set(before["events"]) <= events_now
    assert len(events_now) > len(before["events"])


# -- instances stored by an older SpiffWorkflow -------------------------------------------

SPIFF = {
    "1.2": "spiff_state_1_2.json",
    "1.3": "spiff_state_1_3.json",
    "1.4": "spiff_state_1_4.json",
}
STARTED_AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # as the fixtures were made
#: spiff_call.bpmn waiting inside the process it calls (SpiffWorkflow 3.2 cannot read
#: these itself: its 1.3 -> 1.4 and 1.4 -> 1.5 steps fail on a running subprocess).
SPIFF_CALL = {"1.3": "spiff_call_state_1_3.json", "1.4": "spiff_call_state_1_4.json"}
#: The data of the instance in the fixtures, waiting at `inspect`.
GRADED = {"value": 1500, "customer": "Ann Weber", "priority": "high"}


def engine_on(url: str, at: datetime) -> Engine:
    return Engine(url, registry=Recorder().registry(), clock=FixedClock(at))


def store_old_state(
    url: str,
    version: str,
    *,
    with_specs: bool = True,
    children_first: bool = False,
    process: str = "spiff_inspection",
) -> dict[str, str]:
    """An instance of spiff_inspection whose row holds the state an older SpiffWorkflow
    wrote, as an engine on that release would have stored it; returns the open tasks'
    ids by step.

    The instance is started by today's engine with the same data at the same time (so
    its row, history and task rows are as they would be), then its state is replaced by
    the fixture's and its open task rows take the fixture's task ids."""
    engine = engine_on(url, STARTED_AT)
    engine.init()
    try:
        engine.deploy(
            [FIXTURES / "spiff_inspection.bpmn", FIXTURES / "spiff_call.bpmn"], actor="owner"
        )
        engine.start(
            process,
            {"value": 1500, "customer": "Ann Weber"},
            business_key="OLD",
            actor="alice",
        )
        fixture = SPIFF[version] if process == "spiff_inspection" else SPIFF_CALL[version]
        state = json.loads((FIXTURES / fixture).read_text(encoding="utf-8"))
        assert state["serializer_version"] == version
        if not with_specs:  # stored the engine's way: the specs live with the definition
            del state["spec"], state["subprocess_specs"]
        if children_first:  # a JSON object's order means nothing
            state["tasks"] = dict(reversed(state["tasks"].items()))
        workflows = [state, *state["subprocesses"].values()]
        ids = {
            t["task_spec"]: t["id"]
            for workflow in workflows
            for t in workflow["tasks"].values()
            if t["state"] in (8, 16) and t["task_spec"] != "inspection"
        }
        assert set(ids) == {"inspect", "inspect_overdue"}
        with engine.db.engine.begin() as conn:
            number = conn.execute(
                text("SELECT id FROM instance WHERE business_key = 'OLD'")
            ).scalar_one()
            conn.execute(
                text("UPDATE instance SET state = :s, serializer_version = :v WHERE id = :i"),
                {"s": json.dumps(state), "v": version, "i": number},
            )
            for step, task_id in ids.items():
                changed = conn.execute(
                    text(
                        "UPDATE task SET id = :t WHERE instance_id = :i AND bpmn_id = :b "
                        "AND ended_at IS NULL"
                    ),
                    {"t": task_id, "i": number, "b": step},
                )
                assert changed.rowcount == 1
    finally:
        engine.db.dispose()
    return ids


def stored(url: str) -> tuple[str, dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT serializer_version, state FROM instance WHERE business_key = 'OLD'")
            ).one()
    finally:
        engine.dispose()
    return row.serializer_version, json.loads(row.state)


@pytest.mark.parametrize("version", sorted(SPIFF))
@pytest.mark.parametrize("path", ["inspected", "overdue"])
def test_an_instance_stored_by_an_older_spiffworkflow_loads_runs_on_and_is_saved_anew(
    sqlite_url: str, version: str, path: str
) -> None:
    ids = store_old_state(sqlite_url, version)
    engine = engine_on(sqlite_url, STARTED_AT + timedelta(hours=1))
    try:
        shown = engine.show("OLD")  # reading changes nothing
        assert {t.bpmn_id: t.id for t in shown.open_tasks} == ids
        assert {t.bpmn_id: t.due_at for t in shown.open_tasks}["inspect_overdue"] == (
            STARTED_AT + timedelta(days=2)
        )
        assert shown.data == GRADED
        assert stored(sqlite_url)[0] == version

        if path == "inspected":
            engine.complete("OLD:inspect", {"condition": "as sold"}, actor="bob")
            steps = ["inspect"]
        else:
            clock_of(engine).set(STARTED_AT + timedelta(days=3))
            [fired] = engine.run_due(actor="scheduler")
            assert fired.error is None
            assert [t.bpmn_id for t in engine.show("OLD").open_tasks] == ["inspect_late"]
            engine.complete("OLD:inspect_late", {"condition": "as sold"}, actor="bob")
            steps = ["inspect_late"]

        done = engine.show("OLD")
        assert done.status == "completed"
        assert done.data == {**GRADED, "condition": "as sold"}
        saved_version, state = stored(sqlite_url)
        assert saved_version == SERIALIZER_VERSION != version
        assert "spec" not in state  # saved the engine's way
        history = engine.history("OLD")
        upgraded = [e for e in history if e.kind == "state_upgraded"]
        assert [(e.data["from"], e.data["to"]) for e in upgraded] == [(version, SERIALIZER_VERSION)]
        assert [e.bpmn_id for e in history if e.kind == "task_completed"] == steps
        story = Cli(sqlite_url)("history", "OLD")
        assert f"upgraded from serializer {version} to {SERIALIZER_VERSION}" in story
        assert history[-1].kind == "completed"
        assert engine.verify("OLD") is None
    finally:
        engine.db.dispose()


def test_an_instance_stored_without_its_specs_is_upgraded_with_its_definitions(
    sqlite_url: str,
) -> None:
    """A state stored the engine's way (specs apart) migrates with its definition's
    specs; its tasks listed children first lose no data on the way (today's format
    stores a task's data as a change to its parent's)."""
    store_old_state(sqlite_url, "1.3", with_specs=False, children_first=True)
    engine = engine_on(sqlite_url, STARTED_AT + timedelta(days=3))
    try:
        [fired] = engine.run_due(actor="scheduler")
        assert fired.error is None
        assert stored(sqlite_url)[0] == SERIALIZER_VERSION
        engine.complete("OLD:inspect_late", {"condition": "as sold"}, actor="bob")
        done = engine.show("OLD")
        assert done.status == "completed"
        assert done.data == {**GRADED, "condition": "as sold"}
    finally:
        engine.db.dispose()


@pytest.mark.parametrize("version", sorted(SPIFF_CALL))
def test_an_instance_inside_a_called_process_stored_by_an_older_spiffworkflow_loads(
    sqlite_url: str, version: str
) -> None:
    ids = store_old_state(sqlite_url, version, process="spiff_call")
    engine = engine_on(sqlite_url, STARTED_AT + timedelta(hours=1))
    try:
        shown = engine.show("OLD")
        assert {t.bpmn_id: t.id for t in shown.open_tasks} == ids
        assert shown.data == GRADED
        engine.complete("OLD:inspect", {"condition": "as sold"}, actor="bob")
        done = engine.show("OLD")
        assert done.status == "completed"
        assert done.data == {**GRADED, "condition": "as sold"}
        assert stored(sqlite_url)[0] == SERIALIZER_VERSION
        assert [e.kind for e in engine.history("OLD")][1] == "state_upgraded"
        assert engine.verify("OLD") is None
    finally:
        engine.db.dispose()


def test_a_state_from_an_unknown_serializer_is_refused_and_left_as_it_is(
    sqlite_url: str,
) -> None:
    store_old_state(sqlite_url, "1.4")
    url = create_engine(sqlite_url)
    with url.begin() as conn:
        conn.execute(text("UPDATE instance SET serializer_version = '9.0'"))
    url.dispose()
    before = stored(sqlite_url)
    engine = engine_on(sqlite_url, STARTED_AT + timedelta(hours=1))
    try:
        with pytest.raises(ConfigurationError, match=r"serializer 9\.0; this engine reads"):
            engine.complete("OLD:inspect", {"condition": "as sold"}, actor="bob")
        assert stored(sqlite_url) == before
        assert [e.kind for e in engine.history("OLD")] == ["started"]
    finally:
        engine.db.dispose()
