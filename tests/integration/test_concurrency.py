"""Two commands that change one instance at once: one wins, the other is undone.

Each engine below has its own connection pool, so the two commands run on two real
database connections. A handler that waits on a barrier holds both commands after
they have loaded the instance and before either saves it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from support import Recorder, fixture

from engine import ConcurrencyError, Engine, Registry, TaskContext
from engine.views import CommandResult


def _barrier_registry(barrier: threading.Barrier) -> Registry:
    def echo(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        """Wait until the other command has loaded the instance too."""
        barrier.wait(timeout=20)
        return {"side": params["side"]}

    registry = Registry()
    registry.register("test.echo", echo, source="tests")
    return registry


def test_two_commands_on_one_instance_never_both_succeed(
    make_engine: Any, recorder: Recorder
) -> None:
    setup = make_engine()
    setup.deploy(fixture("parallel_pair.bpmn"), actor="owner")
    started = setup.start("parallel_pair", {}, business_key="PAIR-1", actor="ann")
    tasks = {t.bpmn_id: t.id for t in started.instance.open_tasks}
    before = setup.show("PAIR-1")

    barrier = threading.Barrier(2)
    first = make_engine(registry=_barrier_registry(barrier))
    second = make_engine(registry=_barrier_registry(barrier))
    outcomes: dict[str, CommandResult | Exception] = {}

    def complete(name: str, engine: Engine, task_id: str) -> None:
        try:
            outcomes[name] = engine.complete(task_id, {name: True}, actor=name)
        except Exception as exc:
            outcomes[name] = exc

    threads = [
        threading.Thread(target=complete, args=("left", first, tasks["left"])),
        threading.Thread(target=complete, args=("right", second, tasks["right"])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    winners = [n for n, o in outcomes.items() if isinstance(o, CommandResult)]
    losers = [n for n, o in outcomes.items() if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1, outcomes
    assert len(losers) == 1, outcomes
    winner, loser = winners[0], losers[0]
    assert "at the same time" in str(outcomes[loser])

    after = setup.show("PAIR-1")
    # Nothing the loser did was kept: its task is still open, its data and events absent.
    assert {t.bpmn_id for t in after.open_tasks if t.kind == "user"} == {loser}
    assert loser not in after.data
    assert after.data[winner] is True
    history = setup.history("PAIR-1")
    assert [e.actor for e in history[before.event_count :]] == [winner, winner]
    assert [e.kind for e in history[before.event_count :]] == ["task_completed", "handler_result"]
    assert setup.verify("PAIR-1") is None

    # The loser repeats its command on what is stored now, and it goes through.
    barrier_again = threading.Barrier(1)
    retry_engine = make_engine(registry=_barrier_registry(barrier_again))
    done = retry_engine.complete(tasks[loser], {loser: True}, actor=loser)
    assert done.instance.status == "completed"
    assert setup.verify("PAIR-1") is None


def test_a_stale_cached_instance_is_reloaded_not_overwritten(make_engine: Any) -> None:
    """An engine that cached an instance must not write over a change made elsewhere."""
    alice = make_engine()
    alice.deploy(fixture("parallel_pair.bpmn"), actor="owner")
    started = alice.start("parallel_pair", {}, business_key="PAIR-2", actor="alice")
    tasks = {t.bpmn_id: t.id for t in started.instance.open_tasks}

    bob = make_engine()
    bob.complete(tasks["left"], {"left": True}, actor="bob")  # alice's cache is now stale

    result = alice.complete(tasks["right"], {"right": True}, actor="alice")

    assert result.instance.status == "completed"
    data = alice.show("PAIR-2").data
    assert data["left"] is True
    assert data["right"] is True
    kinds = [(e.kind, e.actor) for e in alice.history("PAIR-2")]
    assert ("task_completed", "bob") in kinds
    assert ("task_completed", "alice") in kinds
    assert alice.verify("PAIR-2") is None


@pytest.mark.parametrize("cache", [True, False])
def test_completing_an_already_completed_task_is_refused(make_engine: Any, cache: bool) -> None:
    from engine import Settings, TaskNotFoundError

    settings = Settings(instance_cache_size=256 if cache else 0)
    first = make_engine(settings=settings)
    first.deploy(fixture("parallel_pair.bpmn"), actor="owner")
    started = first.start("parallel_pair", {}, business_key="PAIR-3", actor="ann")
    left = next(t.id for t in started.instance.open_tasks if t.bpmn_id == "left")
    first.complete(left, {}, actor="ann")
    events = first.show("PAIR-3").event_count

    second = make_engine(settings=settings)
    with pytest.raises(TaskNotFoundError):
        second.complete(left, {}, actor="bob")
    assert first.show("PAIR-3").event_count == events
