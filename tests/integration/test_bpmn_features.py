"""Each BPMN feature the engine supports, proven end to end through the public API.

One small diagram per feature lives in tests/fixtures/bpmn (the file name is the
process or decision id). Every test checks the path taken (which tasks opened, the
history in order), the data produced, and that the history's hash chain is intact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from support import T0, Recorder, clock_of, fixture

from engine import Engine, InvalidStateError, ProcessValidationError, TaskNotFoundError
from engine.persistence import InstanceRecord
from engine.views import InstanceView

ACTOR = "ann"


def deploy(engine: Engine, *names: str) -> None:
    engine.deploy(fixture(*names), actor="owner")


def trail(engine: Engine, key: str) -> list[tuple[str, str | None]]:
    """The history as (kind, bpmn_id) pairs, in order."""
    return [(e.kind, e.bpmn_id) for e in engine.history(key)]


def open_steps(view: InstanceView, kind: str = "user") -> list[str]:
    return sorted(t.bpmn_id for t in view.open_tasks if t.kind == kind)


def done(engine: Engine, key: str) -> None:
    """The instance finished and its history is intact."""
    assert engine.show(key).status == "completed"
    assert engine.verify(key) is None


# -- gateways ------------------------------------------------------------------------


def test_exclusive_gateway_takes_the_true_condition(engine: Engine) -> None:
    deploy(engine, "gw_exclusive.bpmn")
    started = engine.start("gw_exclusive", {"value": 5000}, business_key="X-1", actor=ACTOR)
    assert open_steps(started.instance) == ["senior_review"]

    engine.complete("X-1:senior_review", {"ok": True}, actor=ACTOR)

    assert trail(engine, "X-1") == [
        ("started", None),
        ("task_completed", "senior_review"),
        ("completed", None),
    ]
    assert engine.show("X-1").data == {"value": 5000, "ok": True}
    done(engine, "X-1")


def test_exclusive_gateway_falls_back_to_the_default_flow(engine: Engine) -> None:
    deploy(engine, "gw_exclusive.bpmn")
    started = engine.start("gw_exclusive", {"value": 50}, business_key="X-2", actor=ACTOR)
    assert open_steps(started.instance) == ["clerk_review"]

    engine.complete("X-2:clerk_review", {}, actor=ACTOR)

    assert trail(engine, "X-2") == [
        ("started", None),
        ("task_completed", "clerk_review"),
        ("completed", None),
    ]
    done(engine, "X-2")


def test_parallel_gateway_opens_both_branches_and_joins_after_both(engine: Engine) -> None:
    deploy(engine, "gw_parallel.bpmn")
    started = engine.start("gw_parallel", {}, business_key="P-1", actor=ACTOR)
    assert open_steps(started.instance) == ["measure", "photograph"]

    after_one = engine.complete("P-1:photograph", {"photos": 3}, actor=ACTOR)
    assert open_steps(after_one.instance) == ["measure"]  # the join waits for the other

    after_two = engine.complete("P-1:measure", {"width_cm": 40}, actor=ACTOR)
    assert open_steps(after_two.instance) == ["file_report"]
    engine.complete("P-1:file_report", {}, actor=ACTOR)

    assert trail(engine, "P-1") == [
        ("started", None),
        ("task_completed", "photograph"),
        ("task_completed", "measure"),
        ("task_completed", "file_report"),
        ("completed", None),
    ]
    assert engine.show("P-1").data == {"photos": 3, "width_cm": 40}  # both branches merged
    done(engine, "P-1")


def test_inclusive_gateway_opens_every_branch_whose_condition_holds(engine: Engine) -> None:
    deploy(engine, "gw_inclusive.bpmn")
    started = engine.start(
        "gw_inclusive", {"damage": ["frame", "glass"]}, business_key="I-1", actor=ACTOR
    )
    assert open_steps(started.instance) == ["fix_frame", "fix_glass"]

    after_one = engine.complete("I-1:fix_glass", {"glass": "new"}, actor=ACTOR)
    assert open_steps(after_one.instance) == ["fix_frame"]  # the join waits for the frame
    after_two = engine.complete("I-1:fix_frame", {"frame": "glued"}, actor=ACTOR)
    assert open_steps(after_two.instance) == ["ship_back"]
    engine.complete("I-1:ship_back", {}, actor=ACTOR)

    assert [b for k, b in trail(engine, "I-1") if k == "task_completed"] == [
        "fix_glass",
        "fix_frame",
        "ship_back",
    ]
    assert engine.show("I-1").data["frame"] == "glued"
    assert engine.show("I-1").data["glass"] == "new"
    done(engine, "I-1")


def test_inclusive_gateway_takes_the_default_when_no_condition_holds(engine: Engine) -> None:
    deploy(engine, "gw_inclusive.bpmn")
    started = engine.start("gw_inclusive", {"damage": []}, business_key="I-2", actor=ACTOR)
    assert open_steps(started.instance) == ["no_repair"]
    assert engine.verify("I-2") is None


# -- subprocesses ----------------------------------------------------------------------


def test_embedded_subprocess_runs_its_steps_then_continues(engine: Engine) -> None:
    deploy(engine, "subprocess_embedded.bpmn")
    started = engine.start("subprocess_embedded", {"rma": 7}, business_key="S-1", actor=ACTOR)
    [crate] = started.instance.open_tasks
    assert (crate.bpmn_id, crate.role) == ("open_crate", "warehouse")  # the subprocess's lane

    after_crate = engine.complete(crate.short_id, {"crate_ok": True}, actor=ACTOR)
    assert open_steps(after_crate.instance) == ["check_work"]
    after_check = engine.complete("S-1:check_work", {"grade": "A"}, actor=ACTOR)
    [refund] = after_check.instance.open_tasks
    assert (refund.bpmn_id, refund.role) == ("refund", "clerk")
    assert after_check.instance.data == {"rma": 7, "crate_ok": True, "grade": "A"}
    engine.complete(refund.short_id, {}, actor=ACTOR)

    assert [b for k, b in trail(engine, "S-1") if k == "task_completed"] == [
        "open_crate",
        "check_work",
        "refund",
    ]
    done(engine, "S-1")


def test_call_activity_runs_the_called_process_and_returns_its_data(
    engine: Engine, recorder: Recorder
) -> None:
    # The child goes first: deploying both new processes at once trips an engine bug
    # (see test_caller_and_called_process_deploy_together below).
    deploy(engine, "call_child.bpmn")
    deployed = engine.deploy(fixture("call_parent.bpmn", "call_child.bpmn"), actor="owner")
    assert {(d.process_id, d.created) for d in deployed} == {
        ("call_parent", True),
        ("call_child", False),
    }

    started = engine.start("call_parent", {"amount": 21}, business_key="C-1", actor=ACTOR)
    assert open_steps(started.instance) == ["pack"]  # the child's service task already ran
    assert [c[:2] for c in recorder.calls] == [("test.double", {"value": 21})]

    after_pack = engine.complete("C-1:pack", {"boxes": 2}, actor=ACTOR)
    assert open_steps(after_pack.instance) == ["confirm"]
    engine.complete("C-1:confirm", {}, actor=ACTOR)

    assert trail(engine, "C-1") == [
        ("started", None),
        ("handler_result", "double_it"),
        ("task_completed", "pack"),
        ("task_completed", "confirm"),
        ("completed", None),
    ]
    data = engine.show("C-1").data
    assert data["doubled"] == {"value": 42}  # the child's results came back to the parent
    assert data["boxes"] == 2
    done(engine, "C-1")


def test_caller_and_called_process_deploy_together(engine: Engine) -> None:
    deployed = engine.deploy(fixture("call_parent.bpmn", "call_child.bpmn"), actor="owner")
    assert {(d.process_id, d.version) for d in deployed} == {
        ("call_parent", 1),
        ("call_child", 1),
    }


def test_call_activity_needs_the_called_process_in_the_deployment(engine: Engine) -> None:
    with pytest.raises(ProcessValidationError, match="call_child"):
        engine.deploy(fixture("call_parent.bpmn"), actor="owner")


# -- business rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "customer", "tier"),
    [(500, "gold", "auto"), (500, "silver", "clerk"), (5000, "gold", "manager")],
)
def test_business_rule_task_sets_the_first_matching_rule_output(
    engine: Engine, amount: int, customer: str, tier: str
) -> None:
    deploy(engine, "rule_tier.bpmn", "tier_decision.dmn")
    started = engine.start(
        "rule_tier", {"amount": amount, "customer": customer}, business_key="R-1", actor=ACTOR
    )
    assert open_steps(started.instance) == ["approve"]
    assert started.instance.data == {"amount": amount, "customer": customer, "tier": tier}
    engine.complete("R-1:approve", {}, actor=ACTOR)
    assert engine.show("R-1").data["tier"] == tier
    done(engine, "R-1")


def test_business_rule_task_without_a_matching_rule_leaves_the_output_unset(
    engine: Engine,
) -> None:
    deploy(engine, "rule_tier.bpmn", "tier_decision.dmn")
    started = engine.start(
        "rule_tier", {"amount": 50_000, "customer": "gold"}, business_key="R-2", actor=ACTOR
    )
    assert open_steps(started.instance) == ["approve"]
    assert "tier" not in started.instance.data
    assert engine.verify("R-2") is None


# -- timers --------------------------------------------------------------------------


def test_interrupting_boundary_timer_cancels_the_task_and_escalates(engine: Engine) -> None:
    deploy(engine, "timer_interrupting.bpmn")
    clock = clock_of(engine)
    started = engine.start("timer_interrupting", {}, business_key="T-1", actor=ACTOR)
    due = T0 + timedelta(days=2)
    [approve] = [t for t in started.instance.open_tasks if t.kind == "user"]
    [timer] = [t for t in started.instance.open_tasks if t.kind == "timer"]
    assert (approve.bpmn_id, approve.due_at) == ("approve", due)
    assert (timer.bpmn_id, timer.state, timer.due_at) == ("deadline", "WAITING", due)

    clock.set(due - timedelta(seconds=1))
    assert engine.run_due(actor="timer") == []
    assert open_steps(engine.show("T-1")) == ["approve"]

    clock.set(due + timedelta(seconds=1))
    [fired] = engine.run_due(actor="timer")
    assert fired.error is None
    assert fired.result is not None
    assert open_steps(fired.result.instance) == ["escalate"]  # approve was cancelled
    assert open_steps(fired.result.instance, "timer") == []
    with pytest.raises(TaskNotFoundError, match="no open task"):
        engine.complete(approve.id, {}, actor=ACTOR)
    done_tasks = {(t.bpmn_id, t.state) for t in engine.show("T-1").done_tasks}
    assert done_tasks == {("approve", "CANCELLED"), ("deadline", "COMPLETED")}
    engine.complete("T-1:escalate", {}, actor="boss")

    assert trail(engine, "T-1") == [
        ("started", None),
        ("timer_fired", None),
        ("task_completed", "escalate"),
        ("completed", None),
    ]
    [fired_event] = [e for e in engine.history("T-1") if e.kind == "timer_fired"]
    assert [t["bpmn_id"] for t in fired_event.data["timers"]] == ["deadline"]
    assert fired_event.data["timers"][0]["due_at"] == due.isoformat()
    done(engine, "T-1")


def test_completing_a_task_past_its_deadline_fires_the_timer_and_refuses(
    engine: Engine,
) -> None:
    deploy(engine, "timer_interrupting.bpmn")
    engine.start("timer_interrupting", {}, business_key="T-2", actor=ACTOR)
    clock_of(engine).set(T0 + timedelta(days=3))  # nobody ran run_due in between

    with pytest.raises(InvalidStateError, match="no longer open"):
        engine.complete("T-2:approve", {"ok": True}, actor=ACTOR)

    assert open_steps(engine.show("T-2")) == ["escalate"]
    assert [k for k, _ in trail(engine, "T-2")] == ["started", "timer_fired"]
    assert engine.verify("T-2") is None


def test_non_interrupting_boundary_timer_adds_a_task_and_keeps_the_original(
    engine: Engine,
) -> None:
    deploy(engine, "timer_noninterrupting.bpmn")
    clock = clock_of(engine)
    started = engine.start("timer_noninterrupting", {}, business_key="T-3", actor=ACTOR)
    due = T0 + timedelta(hours=4)
    [approve] = [t for t in started.instance.open_tasks if t.kind == "user"]
    [timer] = [t for t in started.instance.open_tasks if t.kind == "timer"]
    assert (approve.bpmn_id, approve.due_at) == ("approve", due)
    assert (timer.bpmn_id, timer.due_at) == ("reminder", due)

    clock.set(due - timedelta(seconds=1))
    assert engine.run_due(actor="timer") == []

    clock.set(due + timedelta(minutes=1))
    [fired] = engine.run_due(actor="timer")
    assert fired.result is not None
    assert open_steps(fired.result.instance) == ["approve", "chase"]
    assert open_steps(fired.result.instance, "timer") == []  # it fires once

    engine.complete("T-3:chase", {"called": True}, actor=ACTOR)
    assert engine.show("T-3").status == "running"  # approve is still open
    engine.complete("T-3:approve", {"ok": True}, actor=ACTOR)

    assert trail(engine, "T-3") == [
        ("started", None),
        ("timer_fired", None),
        ("task_completed", "chase"),
        ("task_completed", "approve"),
        ("completed", None),
    ]
    done(engine, "T-3")


@pytest.mark.parametrize(
    ("process_id", "timer_id", "due"),
    [
        ("timer_wait_duration", "cool_down", T0 + timedelta(hours=4)),
        ("timer_wait_date", "december", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_intermediate_timer_waits_until_it_is_due(
    engine: Engine, process_id: str, timer_id: str, due: datetime
) -> None:
    deploy(engine, f"{process_id}.bpmn")
    clock = clock_of(engine)
    started = engine.start(process_id, {}, business_key="W-1", actor=ACTOR)
    [timer] = started.instance.open_tasks
    assert (timer.bpmn_id, timer.kind, timer.state, timer.due_at) == (
        timer_id,
        "timer",
        "WAITING",
        due,
    )
    assert started.instance.next_timer_at == due

    clock.set(due - timedelta(seconds=1))
    assert engine.run_due(actor="timer") == []
    assert engine.fire_due("W-1", actor="timer").events == []
    assert open_steps(engine.show("W-1"), "timer") == [timer_id]

    clock.set(due + timedelta(seconds=1))
    [fired] = engine.run_due(actor="timer")
    assert fired.result is not None
    assert open_steps(fired.result.instance) == ["inspect"]
    assert fired.result.instance.next_timer_at is None
    engine.complete("W-1:inspect", {}, actor=ACTOR)

    assert trail(engine, "W-1") == [
        ("started", None),
        ("timer_fired", None),
        ("task_completed", "inspect"),
        ("completed", None),
    ]
    done(engine, "W-1")


# -- messages ------------------------------------------------------------------------


def test_intermediate_message_catch_puts_the_payload_in_the_data(engine: Engine) -> None:
    deploy(engine, "msg_wait.bpmn")
    started = engine.start("msg_wait", {"rma": 9}, business_key="M-1", actor=ACTOR)
    [waiting] = started.instance.open_tasks
    assert (waiting.bpmn_id, waiting.kind, waiting.state) == ("wait_payment", "message", "WAITING")

    received = engine.message("M-1", "payment_received", {"amount": 120}, actor="bank")

    assert open_steps(received.instance) == ["ship"]
    assert received.instance.data == {"rma": 9, "payment": {"amount": 120}}
    engine.complete("M-1:ship", {}, actor=ACTOR)
    assert trail(engine, "M-1") == [
        ("started", None),
        ("message", None),
        ("task_completed", "ship"),
        ("completed", None),
    ]
    [message] = [e for e in engine.history("M-1") if e.kind == "message"]
    assert message.data == {
        "name": "payment_received",
        "payload": {"amount": 120},
        "changed": {"payment": [None, {"amount": 120}]},
    }
    assert engine.show("M-1").data["payment"] == {"amount": 120}
    done(engine, "M-1")


def test_a_message_the_instance_does_not_wait_for_is_refused(engine: Engine) -> None:
    deploy(engine, "msg_wait.bpmn")
    engine.start("msg_wait", {}, business_key="M-2", actor=ACTOR)

    with pytest.raises(InvalidStateError, match="refund_approved"):
        engine.message("M-2", "refund_approved", {"x": 1}, actor="bank")

    assert open_steps(engine.show("M-2"), "message") == ["wait_payment"]  # still waiting
    assert [k for k, _ in trail(engine, "M-2")] == ["started"]  # nothing recorded
    engine.message("M-2", "payment_received", {}, actor="bank")
    with pytest.raises(InvalidStateError):  # now it waits at a user task, not a message
        engine.message("M-2", "payment_received", {}, actor="bank")
    assert [k for k, _ in trail(engine, "M-2")] == ["started", "message"]
    assert engine.verify("M-2") is None


# -- errors --------------------------------------------------------------------------


def test_error_end_event_in_a_subprocess_is_caught_by_its_boundary(engine: Engine) -> None:
    deploy(engine, "error_subprocess.bpmn")
    started = engine.start("error_subprocess", {}, business_key="E-1", actor=ACTOR)
    assert open_steps(started.instance) == ["inspect"]

    thrown = engine.complete("E-1:inspect", {"damaged": True, "note": "torn"}, actor=ACTOR)

    assert open_steps(thrown.instance) == ["claim_insurance"]
    assert thrown.instance.data["damage"] == {"note": "torn"}  # the error's payload
    engine.complete("E-1:claim_insurance", {}, actor=ACTOR)
    assert [b for k, b in trail(engine, "E-1") if k == "task_completed"] == [
        "inspect",
        "claim_insurance",
    ]
    done(engine, "E-1")


def test_subprocess_without_an_error_leaves_by_its_normal_flow(engine: Engine) -> None:
    deploy(engine, "error_subprocess.bpmn")
    engine.start("error_subprocess", {}, business_key="E-2", actor=ACTOR)
    passed = engine.complete("E-2:inspect", {"damaged": False, "note": ""}, actor=ACTOR)
    assert open_steps(passed.instance) == ["restock"]
    assert "damage" not in passed.instance.data
    assert engine.verify("E-2") is None


def test_bpmn_error_from_a_handler_is_caught_by_the_service_task_boundary(
    engine: Engine, recorder: Recorder
) -> None:
    deploy(engine, "error_service.bpmn")
    started = engine.start("error_service", {"code": "refused"}, business_key="E-3", actor=ACTOR)

    assert [c[:2] for c in recorder.calls] == [("test.reject", {"code": "refused"})]
    assert started.failures == []
    assert open_steps(started.instance) == ["ship_by_hand"]
    assert open_steps(started.instance, "service") == []
    assert started.instance.data["refusal"] == {"why": "test"}  # the handler's payload
    assert "booking" not in started.instance.data
    engine.complete("E-3:ship_by_hand", {}, actor=ACTOR)

    assert trail(engine, "E-3") == [
        ("started", None),
        ("error_thrown", "book_carrier"),
        ("task_completed", "ship_by_hand"),
        ("completed", None),
    ]
    [thrown] = [e for e in engine.history("E-3") if e.kind == "error_thrown"]
    assert (thrown.data["code"], thrown.data["message"]) == ("refused", "rejected by test")
    done(engine, "E-3")


def test_uncaught_bpmn_error_fails_the_task_and_keeps_the_instance(
    engine: Engine, recorder: Recorder
) -> None:
    deploy(engine, "error_service.bpmn")
    started = engine.start("error_service", {"code": "lost"}, business_key="E-4", actor=ACTOR)

    [failed] = started.instance.open_tasks
    assert (failed.bpmn_id, failed.kind, failed.state) == ("book_carrier", "service", "FAILED")
    assert failed.error is not None
    assert "'lost'" in failed.error
    assert "not caught" in failed.error
    assert failed.attempts == 1
    assert started.failures == [failed.error]
    assert started.instance.status == "running"
    assert started.instance.incident_count == 1

    retried = engine.retry("E-4", actor=ACTOR)  # the same error again: still failed
    [again] = retried.instance.open_tasks
    assert (again.state, again.attempts) == ("FAILED", 2)
    assert len(recorder.calls) == 2
    assert trail(engine, "E-4") == [
        ("started", None),
        ("handler_failed", "book_carrier"),
        ("retried", "book_carrier"),
        ("handler_failed", "book_carrier"),
    ]
    assert engine.show("E-4").status == "running"
    assert engine.verify("E-4") is None


# -- multi-instance and loops ---------------------------------------------------------


def test_parallel_multi_instance_opens_one_task_per_item_and_collects_results(
    engine: Engine,
) -> None:
    deploy(engine, "mi_parallel.bpmn")
    reviewers = ["ann", "ben", "cat"]
    started = engine.start(
        "mi_parallel", {"reviewers": reviewers}, business_key="MI-1", actor=ACTOR
    )
    reviews = [t for t in started.instance.open_tasks if t.kind == "user"]
    assert [t.bpmn_id for t in reviews] == ["review"] * 3
    assert {t.state for t in reviews} == {"READY"}
    assert len({t.id for t in reviews}) == 3

    answers = ["yes", "no", "yes"]
    for number, task in enumerate(reviews):
        result = engine.complete(task.id, {"answer": answers[number]}, actor=ACTOR)
        left = len(reviews) - number - 1
        assert open_steps(result.instance) == (["review"] * left if left else ["decide"])
    engine.complete("MI-1:decide", {}, actor=ACTOR)

    verdicts = [v.split(": ") for v in engine.show("MI-1").data["verdicts"]]
    assert sorted(who for who, _ in verdicts) == reviewers  # each task got its own item
    assert sorted(answer for _, answer in verdicts) == sorted(answers)
    assert [k for k, _ in trail(engine, "MI-1")] == [
        "started",
        "task_completed",
        "task_completed",
        "task_completed",
        "task_completed",
        "completed",
    ]
    done(engine, "MI-1")


def test_sequential_multi_instance_opens_one_task_at_a_time_in_order(
    engine: Engine, make_engine: Callable[..., Engine]
) -> None:
    deploy(engine, "mi_sequential.bpmn")
    restarted = make_engine(clock=clock_of(engine))  # a second engine with a cold spec cache
    stops = ["Basel", "Bern", "Chur"]
    started = engine.start(
        "mi_sequential", {"stops": stops, "driver": "dan"}, business_key="MI-2", actor=ACTOR
    )
    assert open_steps(started.instance) == ["sign_stop"]

    for number in range(len(stops)):
        runner = restarted if number == 1 else engine
        result = runner.complete("MI-2:sign_stop", {}, actor="dan")
        last = number == len(stops) - 1
        assert open_steps(result.instance) == (["close_route"] if last else ["sign_stop"])
    engine.complete("MI-2:close_route", {}, actor=ACTOR)

    assert engine.show("MI-2").data["signatures"] == ["Basel by dan", "Bern by dan", "Chur by dan"]
    assert [b for k, b in trail(engine, "MI-2") if k == "task_completed"] == [
        "sign_stop",
        "sign_stop",
        "sign_stop",
        "close_route",
    ]
    done(engine, "MI-2")


def test_standard_loop_repeats_the_task_until_its_condition_is_false(engine: Engine) -> None:
    deploy(engine, "loop_standard.bpmn")
    started = engine.start("loop_standard", {}, business_key="L-1", actor=ACTOR)
    assert open_steps(started.instance) == ["counter_offer"]

    again = engine.complete("L-1:counter_offer", {"accepted": False, "offer": 80}, actor=ACTOR)
    assert open_steps(again.instance) == ["counter_offer"]
    accepted = engine.complete("L-1:counter_offer", {"accepted": True, "offer": 90}, actor=ACTOR)
    assert open_steps(accepted.instance) == ["refund"]
    assert accepted.instance.data["offer"] == 90
    engine.complete("L-1:refund", {}, actor=ACTOR)

    assert [b for k, b in trail(engine, "L-1") if k == "task_completed"] == [
        "counter_offer",
        "counter_offer",
        "refund",
    ]
    done(engine, "L-1")


def test_an_overdue_task_escalates_to_the_supervisor_role_and_stays_open(engine: Engine) -> None:
    deploy(engine, "escalate_review.bpmn")
    clock = clock_of(engine)
    engine.start("escalate_review", {}, business_key="E-1", actor=ACTOR)
    due = T0 + timedelta(days=2)
    [review] = engine.tasks(instance="E-1")
    assert (review.role, review.due_at, review.escalated_to) == ("clerk", due, None)
    assert engine.tasks(role="clerk_supervisor") == []

    clock.set(due + timedelta(hours=1))
    [fired] = engine.run_due(actor="timer")
    assert fired.result is not None
    [escalated] = [e for e in fired.result.events if e.kind == "escalated"]
    assert (escalated.bpmn_id, escalated.data["role"]) == ("review", "clerk_supervisor")
    assert escalated.data["due_at"] == due.isoformat()

    # Open for its own role and in the supervisor's worklist; the deadline is kept.
    [own] = engine.tasks(role="clerk")
    [supervisor] = engine.tasks(role="clerk_supervisor")
    assert own.id == supervisor.id == review.id
    assert (own.due_at, own.escalated_to) == (due, "clerk_supervisor")
    assert engine.run_due(actor="timer") == []  # it escalates once

    engine.complete(review.id, {}, actor=ACTOR)
    assert engine.show("E-1").status == "completed"
    assert engine.tasks(role="clerk_supervisor") == []
    assert trail(engine, "E-1") == [
        ("started", None),
        ("timer_fired", None),
        ("escalated", "review"),
        ("task_completed", "review"),
        ("completed", None),
    ]


def test_an_escalation_in_a_called_process_neither_blocks_nor_piles_up(engine: Engine) -> None:
    deploy(engine, "escalate_review.bpmn", "escalate_call.bpmn")
    clock = clock_of(engine)
    engine.start("escalate_call", {"note": "x" * 1000}, business_key="E-2", actor=ACTOR)
    clock.set(T0 + timedelta(days=3))
    engine.run_due(actor="timer")
    [review] = engine.tasks(role="clerk_supervisor")
    assert (review.bpmn_id, review.escalated_to) == ("review", "clerk_supervisor")
    with engine.db.read() as session:
        state = session.scalar(
            select(InstanceRecord.state).where(InstanceRecord.business_key == "E-2")
        )
    # The library keeps an escalation nothing catches, with a copy of the data, as an
    # outgoing event in the saved state; the engine drops it once the task is marked.
    assert state is not None
    assert json.loads(state)["bpmn_events"] == []
    engine.complete(review.id, {}, actor=ACTOR)
    assert open_steps(engine.show("E-2")) == ["after"]


def test_timers_overdue_together_fire_in_the_order_they_fell_due(
    engine: Engine, recorder: Recorder
) -> None:
    """run-due after three weeks: the 5-day reminder, then the 14-day lapse, then the
    2-day deadline the lapse started (counted from day 14, so also past) — in that order,
    each with what it started run before the next."""
    deploy(engine, "timers_catch_up.bpmn")
    clock = clock_of(engine)
    engine.start("timers_catch_up", {}, business_key="C-1", actor=ACTOR)
    clock.set(T0 + timedelta(days=21))
    [fired] = engine.run_due(actor="timer")
    assert fired.result is not None
    assert [p["notice"] for _op, p, _ctx in recorder.calls] == ["reminder", "lapsed", "overdue"]
    rounds = [e.data["timers"] for e in fired.result.events if e.kind == "timer_fired"]
    assert [[(t["bpmn_id"], t["due_at"]) for t in r] for r in rounds] == [
        [("remind", (T0 + timedelta(days=5)).isoformat())],
        [("lapse", (T0 + timedelta(days=14)).isoformat())],
        [("call_due", (T0 + timedelta(days=16)).isoformat())],
    ]
    [call] = engine.tasks(instance="C-1")
    assert (call.bpmn_id, call.due_at) == ("call", T0 + timedelta(days=16))
    assert engine.run_due(actor="timer") == []


def test_an_event_gateway_with_a_timer_branch_still_takes_messages(engine: Engine) -> None:
    deploy(engine, "parcel_news.bpmn")
    clock = clock_of(engine)
    started = engine.start("parcel_news", {}, business_key="G-1", actor=ACTOR)
    [wait] = [t for t in started.instance.open_tasks if t.bpmn_id == "gw"]
    assert (wait.kind, wait.due_at) == ("timer", T0 + timedelta(days=30))

    for status in ("in_transit", "in_transit"):
        engine.message("G-1", "parcel_update", {"status": status}, actor=ACTOR)
    shown = engine.show("G-1")
    assert shown.data["n"] == 2
    [wait] = [t for t in shown.open_tasks if t.bpmn_id == "gw"]
    assert wait.due_at == T0 + timedelta(days=30)  # the same clock: no time passed

    clock.set(T0 + timedelta(days=31))
    [fired] = engine.run_due(actor="timer")
    assert fired.result is not None
    assert open_steps(fired.result.instance) == ["trace"]
    with pytest.raises(InvalidStateError, match="not waiting"):
        engine.message("G-1", "return_received", {}, actor=ACTOR)


def test_an_event_gateway_ends_on_the_message_that_comes_first(engine: Engine) -> None:
    deploy(engine, "parcel_news.bpmn")
    engine.start("parcel_news", {}, business_key="G-2", actor=ACTOR)
    engine.message("G-2", "return_received", {}, actor=ACTOR)
    assert engine.show("G-2").status == "completed"
    assert trail(engine, "G-2")[-2:] == [("message", None), ("completed", None)]
