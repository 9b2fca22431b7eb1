"""A handler that hangs is cut off by its time limit: the attempt fails with the limit
as its message, what it wrote before it hung is undone, its thread can no longer reach
the database, and after the configured attempts the task is an incident. Inline (the
command that reaches the task) and in workers, where other instances go on meanwhile
and no job stays held."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import URL
from support import T0, Recorder, fixture

import cli
from engine import (
    ConfigurationError,
    Engine,
    FixedClock,
    HandlerFailedError,
    Registry,
    Settings,
    TaskContext,
)
from engine.registry import HandlerTimedOut, abandoned_calls, timeout
from engine.worker import Worker

LIMIT = 0.3  # seconds
#: Every handler with a time limit (the default one).
LIMITED = Settings(handler_timeout=60)


class Hang:
    """A `test.double` that hangs for the instances named, until released: before it
    hangs it writes a row through `ctx.services` (the command's connection), and when
    released it tries to write another."""

    def __init__(self, recorder: Recorder, keys: set[str]) -> None:
        self.recorder = recorder
        self.keys = keys
        self.release = threading.Event()
        self.after_cutoff: list[BaseException | None] = []
        self.finished = threading.Event()

    def __call__(self, params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if ctx.business_key not in self.keys:
            return self.recorder.double(params, ctx)
        ctx.services.execute(text("INSERT INTO scratch (note) VALUES ('before')"))
        self.release.wait(30)
        try:
            ctx.services.execute(text("INSERT INTO scratch (note) VALUES ('after')"))
            self.after_cutoff.append(None)
        except BaseException as exc:  # what the leash says
            self.after_cutoff.append(exc)
        self.finished.set()
        return {"value": 0}

    def registry(self, limit: float | None = LIMIT) -> Registry:
        registry = self.recorder.registry()
        hanging = Registry()
        hanging.register("test.double", self, source="tests", timeout=limit)
        for info in registry:
            if info.operator != "test.double":
                hanging.register(info.operator, info.handler, info.source)
        return hanging


@pytest.fixture
def hang(recorder: Recorder) -> Iterator[Hang]:
    hanging = Hang(recorder, {"H-1"})
    yield hanging
    hanging.release.set()  # no thread outlives the test
    if hanging.after_cutoff or hanging.keys:
        hanging.finished.wait(5)


def _engine(url: str | URL, hang: Hang, settings: Settings) -> Engine:
    engine = Engine(
        url,
        registry=hang.registry(),
        clock=FixedClock(T0),
        settings=settings,
        services=lambda conn, _now: conn,  # the handler gets the command's connection
    )
    engine.init()
    with engine.db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (note VARCHAR(20))"))
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    return engine


def _scratch(engine: Engine) -> list[str]:
    with engine.db.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT note FROM scratch"))]


def _released(hang: Hang) -> BaseException | None:
    """Let the abandoned call go on, and say what its next database call met."""
    hang.release.set()
    assert hang.finished.wait(10), "the abandoned call did not end"
    [met] = hang.after_cutoff
    return met


def test_an_inline_call_past_its_limit_fails_and_writes_nothing(
    db_url: str | URL, hang: Hang
) -> None:
    engine = _engine(db_url, hang, Settings(handler_timeout=60))
    try:
        engine.start("review_call", {"amount": 2}, business_key="H-1", actor="ann")
        result = engine.complete("H-1:review", {}, actor="ann")
        message = f"handler test.double timed out after {LIMIT:g} s and was cut off"
        assert result.failures == [message]
        [incident] = engine.incidents()
        assert (incident.business_key, incident.error, incident.attempts) == ("H-1", message, 1)
        failed = [e for e in engine.history("H-1") if e.kind == "handler_failed"]
        assert [e.data["error"] for e in failed] == [message]
        assert engine.verify("H-1") is None
        assert _scratch(engine) == []  # what it wrote before it hung was undone
        # Released, the abandoned thread cannot reach the database any more.
        assert isinstance(_released(hang), HandlerTimedOut)
        assert _scratch(engine) == []
        # Fixed (it answers now), the incident is retried like any other.
        hang.keys.clear()
        engine.retry("H-1", actor="ops")
        assert engine.show("H-1").status == "completed"
        assert engine.verify("H-1") is None
    finally:
        engine.db.dispose()


def test_a_call_within_its_limit_keeps_what_it_wrote(sqlite_url: str, hang: Hang) -> None:
    hang.release.set()  # it answers at once
    engine = _engine(sqlite_url, hang, Settings())
    try:
        engine.start("review_call", {"amount": 2}, business_key="H-1", actor="ann")
        result = engine.complete("H-1:review", {}, actor="ann")
        assert result.failures == []
        assert engine.show("H-1").status == "completed"
        assert _scratch(engine) == ["before", "after"]
        assert hang.after_cutoff == [None]
    finally:
        engine.db.dispose()


def test_workers_cut_a_hanging_call_off_and_go_on_with_other_instances(
    db_url: str | URL, hang: Hang, recorder: Recorder
) -> None:
    """Two threads of one worker, five instances, one whose handler hangs: after two
    attempts cut off it is an incident; the four others are done; no job is held."""
    settings = Settings(inline_handlers=False, job_attempts=2, job_backoff=timedelta(0))
    engines = [_engine(db_url, hang, settings)]
    engines.append(
        Engine(
            db_url,
            registry=hang.registry(),
            clock=engines[0].clock,
            settings=settings,
            services=lambda conn, _now: conn,
        )
    )
    try:
        keys = [f"H-{n}" for n in range(1, 6)]
        for key in keys:
            engines[0].start("review_call", {"amount": 2}, business_key=key, actor="ann")
            engines[0].complete(f"{key}:review", {}, actor="ann")
        lines: list[dict[str, Any]] = []
        worker = Worker(engines, actor="worker", name="w", once=True, poll=0.05, log=lines.append)
        report = worker.run()
        assert report.errors == []
        assert report.outcomes == {"done": 4, "retry": 1, "failed": 1}
        message = f"handler test.double timed out after {LIMIT:g} s and was cut off"
        timed_out = [line for line in lines if line["error"] == message]
        assert [line["attempt"] for line in timed_out] == [1, 2]
        [incident] = engines[0].incidents()
        assert (incident.business_key, incident.attempts, incident.error) == ("H-1", 2, message)
        for key in keys[1:]:
            assert engines[0].show(key).status == "completed"
        assert [call[2].business_key for call in recorder.calls] == keys[1:]
        assert [job.status for job in engines[0].jobs()] == ["failed"]  # none held
        for key in keys:
            assert engines[0].verify(key) is None
        assert _scratch(engines[0]) == []
    finally:
        hang.release.set()
        for engine in engines:
            engine.db.dispose()


def test_a_worker_with_too_many_calls_cut_off_stops(sqlite_url: str, hang: Hang) -> None:
    settings = Settings(inline_handlers=False, job_attempts=1)
    engine = _engine(sqlite_url, hang, settings)
    try:
        engine.start("review_call", {"amount": 2}, business_key="H-1", actor="ann")
        engine.complete("H-1:review", {}, actor="ann")
        already = abandoned_calls()
        worker = Worker([engine], actor="worker", name="w", once=True, max_abandoned=already)
        report = worker.run()
        assert report.outcomes == {"failed": 1}
        [error] = report.errors
        assert "handler calls cut off by their time limit still run" in error
    finally:
        engine.db.dispose()


def test_the_limit_comes_from_the_settings_then_the_handler_then_the_default() -> None:
    @timeout(7)
    def declared(_params: Mapping[str, Any], _ctx: TaskContext) -> dict[str, Any]:
        return {}

    registry = Registry()
    registry.register("test.declared", declared, "tests")
    registry.register("test.plain", lambda _p, _c: {}, "tests")
    registry.register("test.given", lambda _p, _c: {}, "tests", timeout=3)
    settings = Settings(handler_timeout=60, handler_timeout_by_operator={"test.given": 1})
    assert settings.timeout_for("test.declared", registry) == 7
    assert settings.timeout_for("test.plain", registry) == 60
    assert settings.timeout_for("test.given", registry) == 1
    assert Settings(handler_timeout=None).timeout_for("test.plain", registry) is None
    assert Settings().timeout_for("test.plain", registry) == 120
    with pytest.raises(ConfigurationError, match=r"'test\.never' has timeout 0"):
        registry.register("test.never", lambda _p, _c: {}, "tests", timeout=0)
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        timeout(-1)


def test_the_worker_command_cuts_calls_off_after_its_timeout(
    sqlite_url: str, hang: Hang, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`artreturns worker --timeout`: the limit given on the command line applies to
    handlers that declare none; the JSON line says the attempt timed out."""
    engine = _engine(sqlite_url, hang, Settings(inline_handlers=False))
    try:
        engine.start("review_call", {"amount": 2}, business_key="H-1", actor="ann")
        engine.complete("H-1:review", {}, actor="ann")
    finally:
        engine.db.dispose()
    registry = hang.registry(limit=None)
    monkeypatch.setattr(Registry, "from_entry_points", classmethod(lambda _cls: registry))
    monkeypatch.setattr(cli.Context, "folders", property(lambda _self: None))
    monkeypatch.setenv("ARTRETURNS_INLINE_HANDLERS", "off")
    monkeypatch.setattr("handlers.store.services_factory", lambda _folders: lambda conn, _now: conn)
    argv = ["--db", sqlite_url, "--as", "ops", "worker", "--once", "--attempts", "1"]
    result = CliRunner().invoke(cli.cli, [*argv, "--timeout", "0.2"])
    assert result.exit_code == 0, result.output
    assert "handler test.double timed out after 0.2 s and was cut off" in result.output
    assert "Jobs run: 1 (1 failed)." in result.output


def test_a_call_stuck_inside_the_database_undoes_the_command(
    sqlite_url: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut off while it is inside a database call that does not end: the connection is
    not the command's alone any more, so the whole command is undone and said so."""
    import time

    import engine.runner

    monkeypatch.setattr(engine.runner, "LEASH_GRACE", 0.1)

    def stuck(_params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        driver = ctx.services.connection.driver_connection
        driver.create_function("nap", 1, time.sleep)
        ctx.services.execute(text("SELECT nap(1.5)"))
        return {"value": 0}

    registry = recorder.registry()
    hanging = Registry()
    hanging.register("test.double", stuck, "tests", timeout=LIMIT)
    hanging.register("test.echo", registry.get("test.echo"), "tests")
    made = Engine(
        sqlite_url,
        registry=hanging,
        clock=FixedClock(T0),
        services=lambda conn, _now: conn,
    )
    made.init()
    made.deploy(fixture("review_call.bpmn"), actor="owner")
    try:
        made.start("review_call", {"amount": 2}, business_key="H-1", actor="ann")
        before = [e.kind for e in made.history("H-1")]
        with pytest.raises(HandlerFailedError, match="inside a database call"):
            made.complete("H-1:review", {}, actor="ann")
        time.sleep(1.5)  # the nap ends
        assert [e.kind for e in made.history("H-1")] == before  # nothing was saved
        assert [t.bpmn_id for t in made.tasks()] == ["review"]
        assert made.verify("H-1") is None
    finally:
        made.db.dispose()


def test_a_call_the_database_refused_fails_and_the_command_goes_on(
    db_url: str | URL, recorder: Recorder
) -> None:
    """A handler whose write breaks a unique constraint (as a second run of the same
    payment would): the attempt fails with that error and is saved; on PostgreSQL too,
    where the failed statement would otherwise leave the whole transaction refused."""

    def twice(_params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        ctx.services.execute(text("INSERT INTO once_only (note) VALUES ('paid')"))
        ctx.services.execute(text("INSERT INTO once_only (note) VALUES ('paid')"))
        return {"value": 0}

    registry = Registry()
    registry.register("test.double", twice, "tests")
    made = Engine(
        db_url,
        registry=registry,
        clock=FixedClock(T0),
        services=lambda conn, _now: conn,
        settings=LIMITED,
    )
    made.init()
    with made.db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE once_only (note VARCHAR(20) PRIMARY KEY)"))
    made.deploy(fixture("review_call.bpmn"), actor="owner")
    try:
        made.start("review_call", {"amount": 2}, business_key="H-1", actor="ann")
        result = made.complete("H-1:review", {}, actor="ann")
        [error] = result.failures
        assert error.startswith("IntegrityError")
        [incident] = made.incidents()
        assert incident.error == error
        assert made.verify("H-1") is None
        with made.db.engine.connect() as conn:  # the first insert went with the call
            assert conn.execute(text("SELECT count(*) FROM once_only")).scalar_one() == 0
    finally:
        made.db.dispose()
