"""Service tasks as jobs for workers: queued by the command that reaches them, claimed
under a lease, run as one command on their instance, gone with the save."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from support import Recorder, clock_of, fixture

from engine import ConcurrencyError, Engine, InvalidStateError, Settings, StoredStateError
from engine.worker import Worker

QUEUED = Settings(inline_handlers=False)


def _waiting(make_engine: Any, key: str = "J-1", settings: Settings = QUEUED) -> Engine:
    engine: Engine = make_engine(settings=settings)
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 2}, business_key=key, actor="ann")
    engine.complete(f"{key}:review", {}, actor="ann")
    return engine


def test_a_queued_service_task_is_a_job_a_worker_runs(make_engine: Any, recorder: Recorder) -> None:
    engine = _waiting(make_engine)
    [job] = engine.jobs()
    assert (job.business_key, job.bpmn_id, job.operator, job.status) == (
        "J-1",
        "call",
        "test.double",
        "queued",
    )
    assert recorder.calls == []

    claimed = engine.claim_job("w1")
    assert claimed is not None
    assert claimed.id == job.id
    [held] = engine.jobs()
    assert (held.status, held.locked_by) == ("running", "w1")

    outcome = engine.run_job(claimed, actor="worker", worker="w1")
    assert outcome.outcome == "done"
    assert [c[0] for c in recorder.calls] == ["test.double"]
    assert engine.jobs() == []  # gone with the save that recorded the result
    kinds = [e.kind for e in engine.history("J-1")]
    assert kinds[-2:] == ["handler_result", "completed"]
    assert engine.verify("J-1") is None


def test_a_held_job_waits_for_its_lease_to_run_out(make_engine: Any) -> None:
    engine = _waiting(make_engine)
    first = engine.claim_job("w1", lease=timedelta(minutes=5))
    assert first is not None
    assert engine.claim_job("w2") is None  # held
    clock = clock_of(engine)
    clock.set(clock.now() + timedelta(minutes=6))  # w1 died: its lease ran out
    again = engine.claim_job("w2")
    assert again is not None
    assert again.id == first.id
    assert engine.run_job(again, actor="worker", worker="w2").outcome == "done"


def test_a_failing_job_becomes_an_incident_and_retry_queues_it_again(
    make_engine: Any, recorder: Recorder
) -> None:
    engine = _waiting(make_engine, settings=Settings(inline_handlers=False, job_attempts=1))
    recorder.failures["test.double"] = RuntimeError("bank down")
    job = engine.claim_job("w1")
    assert job is not None
    outcome = engine.run_job(job, actor="worker", worker="w1")
    assert outcome.outcome == "failed"
    assert "bank down" in (outcome.error or "")
    [failed] = engine.jobs()  # the job is gone; the task, an incident, is listed failed
    assert (failed.id, failed.status, failed.bpmn_id) == (None, "failed", "call")
    assert "bank down" in (failed.last_error or "")
    [incident] = engine.incidents()
    assert incident.operator == "test.double"

    del recorder.failures["test.double"]
    engine.retry("J-1", actor="ann")
    assert engine.incidents() == []
    job = engine.claim_job("w1")
    assert job is not None
    assert engine.run_job(job, actor="worker", worker="w1").outcome == "done"
    assert engine.show("J-1").status == "completed"


def test_a_job_that_lost_a_race_is_released_without_an_attempt(
    make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _waiting(make_engine)
    job = engine.claim_job("w1")
    assert job is not None

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise ConcurrencyError("changed meanwhile")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "_change", lost)
        assert engine.run_job(job, actor="worker", worker="w1").outcome == "released"
    [waiting] = engine.jobs()
    assert (waiting.status, waiting.attempts) == ("queued", 0)
    again = engine.claim_job("w2")
    assert again is not None
    assert again.id == job.id


def test_inline_handlers_write_no_jobs(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 2}, business_key="I-1", actor="ann")
    engine.complete("I-1:review", {}, actor="ann")
    assert engine.jobs() == []
    assert engine.show("I-1").status == "completed"


def test_workers_run_each_job_once(make_engine: Any, recorder: Recorder) -> None:
    """Three workers, each with its own engine and connections, drain 30 instances'
    jobs: every handler runs once, no job is left, every history verifies."""
    setup: Engine = make_engine(settings=QUEUED)
    setup.deploy(fixture("review_call.bpmn"), actor="owner")
    keys = [f"W-{n}" for n in range(30)]
    for key in keys:
        setup.start("review_call", {"amount": 1}, business_key=key, actor="ann")
        setup.complete(f"{key}:review", {}, actor="ann")
    assert len(setup.jobs()) == 30
    outcomes: list[str] = []
    errors: list[BaseException] = []

    engines = {f"w{n}": make_engine(settings=QUEUED, clock=clock_of(setup)) for n in range(3)}

    def work(name: str) -> None:
        engine = engines[name]
        try:
            while (job := engine.claim_job(name)) is not None:
                outcomes.append(engine.run_job(job, actor="worker", worker=name).outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(set(outcomes)) <= ["done", "released"]
    assert outcomes.count("done") == 30
    assert len(recorder.calls) == 30
    assert setup.jobs() == []
    for key in keys:
        assert setup.show(key).status == "completed"
        assert setup.verify(key) is None


def test_a_failing_job_is_tried_again_later_then_becomes_an_incident(
    make_engine: Any, recorder: Recorder
) -> None:
    engine = _waiting(make_engine)
    clock = clock_of(engine)
    recorder.failures["test.double"] = RuntimeError("bank down")
    waits = []
    for attempt in (1, 2, 3):
        job = engine.claim_job("w1")
        assert job is not None, f"attempt {attempt}"
        assert job.attempts == attempt - 1
        outcome = engine.run_job(job, actor="worker", worker="w1")
        if attempt < 3:
            assert outcome.outcome == "retry"
            assert engine.incidents() == []
            [queued] = engine.jobs()
            assert (queued.status, queued.attempts) == ("retrying", attempt)
            assert "bank down" in (queued.last_error or "")
            waits.append(queued.due_at - clock.now())
            assert engine.claim_job("w1") is None  # not due yet
            clock.set(queued.due_at)
    assert outcome.outcome == "failed"
    assert waits == [timedelta(seconds=30), timedelta(seconds=60)]  # the wait doubles
    assert [j.status for j in engine.jobs()] == ["failed"]
    [incident] = engine.incidents()
    assert incident.attempts == 3
    failed = [e.data["attempt"] for e in engine.history("J-1") if e.kind == "handler_failed"]
    assert failed == [1, 2, 3]


def test_the_next_timer_of_an_instance_is_a_job(make_engine: Any) -> None:
    engine: Engine = make_engine(settings=QUEUED)
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    engine.start("review_call", {"amount": 2}, business_key="T-1", actor="ann")
    [timer] = engine.jobs()
    assert timer.kind == "timer"
    assert engine.claim_job("w1") is None  # due in two days
    clock = clock_of(engine)
    clock.set(timer.due_at + timedelta(minutes=1))
    job = engine.claim_job("w1")
    assert job is not None
    assert job.kind == "timer"
    assert engine.run_job(job, actor="worker", worker="w1").outcome == "done"
    assert "timer_fired" in [e.kind for e in engine.history("T-1")]
    assert [j.kind for j in engine.jobs()] == []  # the SLA timer fired; none is left


def test_workers_and_operators_on_the_same_instances(make_engine: Any, recorder: Recorder) -> None:
    """Two workers run the five calls of 20 instances while two operators comment on
    the same instances: no step runs twice, no comment is lost, the only errors are
    ConcurrencyErrors (tried again) and comments on instances that completed.

    The workers begin once each operator has had its first word: on a busy machine
    the workers could otherwise finish every instance before an operator is scheduled,
    leaving nothing to comment on and nothing raced."""
    setup: Engine = make_engine(settings=QUEUED)
    setup.deploy(fixture("call_chain.bpmn"), actor="owner")
    keys = [f"H-{n}" for n in range(20)]
    for key in keys:
        setup.start("call_chain", {}, business_key=key, actor="ann")
    engines = {name: make_engine(settings=QUEUED, clock=clock_of(setup)) for name in "abcd"}
    commented: list[str] = []
    races: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    first_words = {name: threading.Event() for name in "cd"}

    def work(name: str) -> None:
        engine = engines[name]
        try:
            for said in first_words.values():
                if not said.wait(timeout=120):
                    raise TimeoutError("an operator never got its first comment in")
            while True:
                try:
                    job = engine.claim_job(name)
                except ConcurrencyError:
                    continue  # the other worker's claim got there first (as Worker does)
                if job is not None:
                    engine.run_job(job, actor="worker", worker=name)
                elif stop.is_set():
                    break
        except BaseException as exc:
            errors.append(exc)

    def operate(name: str) -> None:
        engine = engines[name]
        try:
            for round_ in range(60):
                key = keys[(round_ * 7 + ord(name)) % len(keys)]
                note = f"{name}-{round_}"
                while True:
                    try:
                        engine.comment(key, note, actor=name)
                        commented.append(note)
                        first_words[name].set()
                        break
                    except ConcurrencyError:
                        races.append(note)  # clean: tried again
                    except InvalidStateError:
                        break  # the instance completed meanwhile: nothing to comment on
        except BaseException as exc:
            errors.append(exc)
        finally:
            first_words[name].set()  # a failed operator must not hold the workers back

    workers = [threading.Thread(target=work, args=(n,)) for n in "ab"]
    operators = [threading.Thread(target=operate, args=(n,)) for n in "cd"]
    for thread in workers + operators:
        thread.start()
    for thread in operators:
        thread.join()
    stop.set()
    for thread in workers:
        thread.join()
    assert errors == []
    assert len(commented) >= 2  # each operator had its word, and the rest raced the workers
    results = 0
    notes: list[str] = []
    for key in keys:
        assert setup.show(key).status == "completed"
        history = setup.history(key)
        steps = [e.bpmn_id for e in history if e.kind == "handler_result"]
        assert steps == ["c1", "c2", "c3", "c4", "c5"], key  # each step once, in order
        results += len(steps)
        notes += [e.data["text"] for e in history if e.kind == "comment"]
        assert setup.verify(key) is None
    assert results == 100
    assert sorted(notes) == sorted(commented)  # no comment lost, none twice


def test_job_count(make_engine: Any) -> None:
    engine = _waiting(make_engine)
    assert engine.job_count("service") == 1
    assert engine.job_count("timer") == 0


def test_a_job_runs_on_through_the_service_tasks_it_reaches(
    make_engine: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One job runs the calls that follow its own in the same command; a call that
    fails there waits for its own next attempt, and the job after it runs on again."""
    engine: Engine = make_engine(settings=QUEUED)
    engine.deploy(fixture("call_chain.bpmn"), actor="owner")
    engine.start("call_chain", {}, business_key="C-1", actor="ann")
    echo = recorder.echo

    def third_fails(params: Any, ctx: Any) -> dict[str, Any]:
        if params["step"] == 3:
            raise RuntimeError("third call down")
        return echo(params, ctx)

    with monkeypatch.context() as patch:
        patch.setattr(recorder, "echo", third_fails)
        engine.registry = recorder.registry()
        job = engine.claim_job("w1")
        assert job is not None
        done = engine.run_job(job, actor="worker", worker="w1")
    assert (done.outcome, done.steps) == ("done", 3)  # c1, c2 ran; c3 failed
    [waiting] = engine.jobs()
    assert (waiting.bpmn_id, waiting.attempts) == ("c3", 1)
    engine.registry = recorder.registry()
    clock = clock_of(engine)
    clock.set(waiting.due_at)
    job = engine.claim_job("w1")
    assert job is not None
    done = engine.run_job(job, actor="worker", worker="w1")
    assert (done.outcome, done.steps) == ("done", 3)  # c3 (second attempt), c4, c5
    assert engine.show("C-1").status == "completed"
    steps = [e.bpmn_id for e in engine.history("C-1") if e.kind == "handler_result"]
    assert steps == ["c1", "c2", "c3", "c4", "c5"]


def _with_attempts(tmp_path: Any, value: str) -> Any:
    """review_call.bpmn with an `attempts` property on its service task."""
    text = fixture("review_call.bpmn")[0].read_text(encoding="utf-8")
    text = text.replace(
        '<spiffworkflow:serviceTaskOperator id="test.double" resultVariable="echo">',
        "<spiffworkflow:properties>"
        f'<spiffworkflow:property name="attempts" value="{value}"/>'
        "</spiffworkflow:properties>"
        '<spiffworkflow:serviceTaskOperator id="test.double" resultVariable="echo">',
    )
    path = tmp_path / "review_call.bpmn"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_diagram_can_give_a_service_task_its_own_attempts(
    make_engine: Any, recorder: Recorder, tmp_path: Any
) -> None:
    engine: Engine = make_engine(settings=QUEUED)
    engine.deploy([_with_attempts(tmp_path, "1")], actor="owner")
    engine.start("review_call", {"amount": 2}, business_key="A-1", actor="ann")
    engine.complete("A-1:review", {}, actor="ann")
    recorder.failures["test.double"] = RuntimeError("down")
    job = engine.claim_job("w1")
    assert job is not None
    assert engine.run_job(job, actor="worker", worker="w1").outcome == "failed"  # not 3
    assert len(engine.incidents()) == 1


def test_attempts_that_are_not_a_number_are_refused_at_deploy(
    make_engine: Any, tmp_path: Any
) -> None:
    from engine import ProcessValidationError

    engine: Engine = make_engine(settings=QUEUED)
    with pytest.raises(ProcessValidationError, match="attempts 'often'"):
        engine.deploy([_with_attempts(tmp_path, "often")], actor="owner")


# -- a diagram that fails around a job's handler -----------------------------------------

TIMER_INTO_CONDITION = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
    targetNamespace="http://example.org">
  <bpmn:process id="timer_condition" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="Four hours">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT4H</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:exclusiveGateway id="gw" default="f4">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:outgoing>f4</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="big"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="small"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="gw"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="big">
      <bpmn:conditionExpression>amount &gt; 10</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="small"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_job_whose_diagram_fails_after_its_handler_is_a_failed_attempt(
    make_engine: Any, recorder: Recorder
) -> None:
    """The handler of P-1 returns text, which the condition after it cannot compare: the
    command fails with nothing saved. The worker records that as a failed attempt (then
    an incident) and goes on with the other instances, instead of stopping; a job held
    by a stopped worker would stop the next worker to take it, and so on."""
    settings = Settings(inline_handlers=False, job_attempts=2, job_backoff=timedelta(0))
    engine: Engine = make_engine(settings=settings)
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    for key, amount in (("P-1", "x"), ("P-2", 2), ("P-3", 20)):
        engine.start("review_call", {"amount": amount}, business_key=key, actor="ann")
        engine.complete(f"{key}:review", {}, actor="ann")
    lines: list[dict[str, Any]] = []
    report = Worker([engine], actor="worker", name="w", once=True, log=lines.append).run()
    assert report.errors == []
    assert report.outcomes == {"done": 2, "retry": 1, "failed": 1}
    said = "continuing after 'Call it' failed at 'gw'"
    failed = [line for line in lines if line["instance"] == engine.show("P-1").id]
    assert [(line["attempt"], line["outcome"]) for line in failed] == [(1, "retry"), (2, "failed")]
    assert all(said in line["error"] for line in failed)
    [incident] = engine.incidents()
    assert (incident.business_key, incident.attempts) == ("P-1", 2)
    assert said in (incident.error or "")
    history = engine.history("P-1")
    assert [e.data["attempt"] for e in history if e.kind == "handler_failed"] == [1, 2]
    assert "handler_result" not in [e.kind for e in history]  # its result was never saved
    assert [engine.show(k).status for k in ("P-1", "P-2", "P-3")] == [
        "running",
        "completed",
        "completed",
    ]
    assert [j.status for j in engine.jobs()] == ["failed"]  # nothing held
    for key in ("P-1", "P-2", "P-3"):
        assert engine.verify(key) is None


def test_a_timer_job_whose_path_fails_waits_for_its_next_try(
    make_engine: Any, tmp_path: Any
) -> None:
    engine: Engine = make_engine(settings=QUEUED)
    diagram = tmp_path / "timer_condition.bpmn"
    diagram.write_text(TIMER_INTO_CONDITION, encoding="utf-8")
    engine.deploy([diagram], actor="owner")
    engine.start("timer_condition", {"amount": "x"}, business_key="T-1", actor="ann")
    engine.start("timer_condition", {"amount": 20}, business_key="T-2", actor="ann")
    clock = clock_of(engine)
    clock.set(clock.now() + timedelta(hours=5))
    before = [e.kind for e in engine.history("T-1")]
    report = Worker([engine], actor="worker", name="w", once=True).run()
    assert report.errors == []
    assert report.outcomes == {"done": 1, "retry": 1}
    assert engine.show("T-2").status == "completed"
    [job] = engine.jobs()
    assert (job.business_key, job.kind, job.status, job.attempts) == ("T-1", "timer", "retrying", 1)
    assert "failed at 'gw'" in (job.last_error or "")
    assert job.due_at == clock.now() + QUEUED.backoff(1)
    assert [e.kind for e in engine.history("T-1")] == before  # nothing saved
    clock.set(job.due_at)
    assert Worker([engine], actor="worker", name="w", once=True).run().outcomes == {"retry": 1}
    [again] = engine.jobs()
    assert again.attempts == 2
    assert again.due_at == clock.now() + QUEUED.backoff(2)  # the wait doubles
    assert engine.verify("T-1") is None
    # Any change to the instance (here a comment; a move to a corrected version) is a
    # fresh start: the timer is due again, with no attempt counted.
    engine.comment("T-1", "looked at it", actor="ann")
    [fresh] = engine.jobs()
    assert (fresh.status, fresh.attempts, fresh.last_error) == ("queued", 0, None)
    assert fresh.due_at is not None
    assert fresh.due_at <= clock.now()


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("not json", "JSONDecodeError"),
        ('{"bad": 1}', "AttributeError"),
        ("[" * 100_000 + "]" * 100_000, "RecursionError"),
    ],
    ids=["not-json", "another-shape", "nested-deep"],
)
def test_an_instance_whose_state_cannot_be_read_is_said_so_and_stops_no_worker(
    make_engine: Any, state: str, said: str
) -> None:
    engine = _waiting(make_engine, "S-1")
    engine.start("review_call", {"amount": 2}, business_key="S-2", actor="ann")
    engine.complete("S-2:review", {}, actor="ann")
    with engine.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE instance SET state = :state WHERE business_key = 'S-1'"),
            {"state": state},
        )
    fresh: Engine = make_engine(settings=QUEUED, clock=clock_of(engine))  # nothing cached
    with pytest.raises(StoredStateError) as refused:
        fresh.comment("S-1", "hello", actor="ann")
    assert f"S-1: its stored state cannot be read ({said}" in refused.value.message
    assert "artreturns replay S-1" in (refused.value.hint or "")
    report = Worker([fresh], actor="worker", name="w", once=True).run()
    assert report.errors == []
    assert report.outcomes == {"done": 1, "retry": 1}
    assert fresh.show("S-2").status == "completed"
    [job] = fresh.jobs()
    assert (job.business_key, job.status, job.attempts) == ("S-1", "retrying", 1)
    assert "its stored state cannot be read" in (job.last_error or "")
