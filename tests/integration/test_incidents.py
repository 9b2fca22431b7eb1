"""Incidents: failed service tasks, listed and retried one, per instance, or all at once."""

from __future__ import annotations

import pytest
from support import Recorder, fixture

from engine import Engine, InvalidStateError, TaskNotFoundError


def failing(engine: Engine, recorder: Recorder, *keys: str) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    recorder.failures["test.double"] = ConnectionError("service unreachable")
    for key in keys:
        engine.start("review_call", {"amount": 7}, business_key=key, actor="ann")
        engine.complete(f"{key}:review", {}, actor="ann")


def test_incidents_are_listed_oldest_first_with_their_error(
    engine: Engine, recorder: Recorder
) -> None:
    failing(engine, recorder, "I-1", "I-2")
    found = engine.incidents()
    assert [(t.business_key, t.bpmn_id, t.state, t.attempts) for t in found] == [
        ("I-1", "call", "FAILED", 1),
        ("I-2", "call", "FAILED", 1),
    ]
    assert found[0].error is not None
    assert "service unreachable" in found[0].error
    assert engine.incidents(operator="test.echo") == []


def test_one_incident_is_retried_by_its_id(engine: Engine, recorder: Recorder) -> None:
    failing(engine, recorder, "I-1", "I-2")
    del recorder.failures["test.double"]
    [first, _second] = engine.incidents()
    result = engine.retry(first.short_id, actor="ops")
    assert result.instance.status == "completed"
    assert [t.business_key for t in engine.incidents()] == ["I-2"]
    with pytest.raises(TaskNotFoundError, match="no open task"):
        engine.retry("I-2:review", actor="ops")  # not an incident: that step is done
    with pytest.raises(InvalidStateError, match=r"no failed tasks calling test\.echo"):
        engine.retry("I-2", actor="ops", operator="test.echo")


def test_retry_all_reports_what_failed_again(engine: Engine, recorder: Recorder) -> None:
    failing(engine, recorder, "I-1", "I-2")
    results = engine.retry_all(actor="ops")  # the service is still down
    assert [(r.instance, r.error) for r in results] == [("I-1", None), ("I-2", None)]
    assert all(r.result is not None and r.result.failures for r in results)
    assert [t.attempts for t in engine.incidents()] == [2, 2]

    del recorder.failures["test.double"]
    results = engine.retry_all(actor="ops", operator="test.double")
    assert [r.result.instance.status for r in results if r.result] == ["completed", "completed"]
    assert engine.incidents() == []
    assert engine.retry_all(actor="ops") == []
