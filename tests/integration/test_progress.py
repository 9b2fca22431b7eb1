"""Batch commands tell how far they are: `run-due` and `retry --all` report each
instance done, and a terminal gets a progress bar on stderr."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from support import Recorder, clock_of, fixture

import cli as cli_module
from engine import Engine


def test_run_due_reports_each_instance(engine: Engine) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    for n in range(3):
        engine.start("review_call", {"amount": 1}, business_key=f"P-{n}", actor="ann")
    clock = clock_of(engine)
    clock.set(clock.now() + timedelta(days=3))
    seen: list[tuple[int, int]] = []
    results = engine.run_due(actor="ops", progress=lambda done, total: seen.append((done, total)))
    assert len(results) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_retry_all_reports_each_instance(engine: Engine, recorder: Recorder) -> None:
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    recorder.failures["test.double"] = RuntimeError("down")
    for n in range(2):
        engine.start("review_call", {"amount": 1}, business_key=f"R-{n}", actor="ann")
        engine.complete(f"R-{n}:review", {}, actor="ann")
    del recorder.failures["test.double"]
    seen: list[tuple[int, int]] = []
    engine.retry_all(actor="ann", progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert engine.incidents() == []


def test_a_terminal_gets_a_bar_and_a_pipe_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    updates: list[dict[str, Any]] = []

    class Bar:
        def __init__(self, **_: Any) -> None: ...

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *_: Any) -> None: ...

        def add_task(self, label: str, total: Any = None) -> str:
            updates.append({"label": label})
            return label

        def update(self, task: str, **values: Any) -> None:
            updates.append(values)

    monkeypatch.setattr("rich.progress.Progress", Bar)
    with cli_module._progress("Working") as progress:
        progress(1, 2)
    assert updates == []  # not a terminal: no bar
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with cli_module._progress("Working") as progress:
        progress(1, 2)
        progress(2, 2)
    assert updates == [
        {"label": "Working"},
        {"completed": 1, "total": 2},
        {"completed": 2, "total": 2},
    ]
