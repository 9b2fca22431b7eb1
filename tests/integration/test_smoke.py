"""The engine end to end on the smallest useful diagram, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from support import Recorder, clock_of, fixture

from engine import Engine


def test_start_complete_call_and_finish(engine: Engine, recorder: Recorder) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    started = engine.start("review_call", {"amount": 7}, business_key="K-1", actor="ann")
    [review] = [t for t in started.instance.open_tasks if t.kind == "user"]
    assert review.role == "clerk"
    assert review.due_at == clock_of(engine).now() + timedelta(days=2)

    done = engine.complete(review.short_id, {"ok": True}, actor="ann")

    assert done.instance.status == "completed"
    assert [c[0] for c in recorder.calls] == ["test.double"]
    assert recorder.calls[0][1] == {"value": 7}
    kinds = [e.kind for e in engine.history("K-1")]
    assert kinds == ["started", "task_completed", "handler_result", "completed"]
    assert engine.verify("K-1") is None
