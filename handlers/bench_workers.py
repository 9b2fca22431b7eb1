"""`artreturns bench --workers-pg URL`: returns taken in by workers on PostgreSQL.

Taking a return in is what the engine does without anyone: applying for a return starts
the procedure, and four service tasks follow before it waits for customer service
(open the RMA ticket, tell the customer, check the request is complete, gather the
facts the policy needs); the handlers read the order, write the ticket, render and
write the notice. The benchmark measures how many returns a second that work gets
through:

- *embedded SQLite*: one process applies for the returns with handlers inline, each
  apply one command that runs the four handlers too;
- *PostgreSQL, N workers*: N `artreturns worker` processes run while this process
  applies for the returns (handlers not inline: each apply queues the first job); the
  time runs from the first apply until no service task is left queued. A step's
  latency is a job's own time in its worker's log line (claim excluded).

Each PostgreSQL run has a schema of its own in the given database, dropped afterwards.
"""

from __future__ import annotations

import csv
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine import Engine, FixedClock, Settings
from engine.bench import Report, command_environment, postgres_schema
from handlers import desk
from handlers.bench import APPLIED, PROCESSES, _order
from handlers.store import Folders, services_factory

#: The actor of the applies and of the workers.
ACTOR = "bench"
#: How long the workers may take to drain the queue, at most.
DRAIN_LIMIT = 600.0


@dataclass(frozen=True)
class Run:
    """One measured run: returns a second, and step latencies in milliseconds."""

    label: str
    rate: float
    p50: float
    p95: float
    steps: int


def _orders(root: Path, count: int) -> Path:
    orders = root / "orders.csv"
    rows = [_order(index, declined=False) for index in range(count)]
    with orders.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return orders


def _engine(url: str, root: Path, inline: bool) -> tuple[Engine, Folders]:
    folders = Folders(root / "data")
    engine = Engine(
        url,
        clock=FixedClock(APPLIED),
        settings=Settings(inline_handlers=inline),
        services=services_factory(folders),
    )
    engine.init()
    engine.deploy([PROCESSES], actor="owner")
    desk.import_orders(engine, folders, _orders(root, _count(root)), actor="owner")
    return engine, folders


def _count(root: Path) -> int:
    return int((root / "count").read_text(encoding="utf-8"))


def _apply(engine: Engine, folders: Folders, index: int) -> None:
    desk.apply(
        engine,
        folders,
        order_number=f"B-{index:06d}",
        artwork_ids=[f"BW-{index:06d}"],
        request_type="return",
        reason="no_reason",
        description="Changed my mind; still sealed.",
        actor=ACTOR,
    )


def embedded(root: Path, count: int) -> Run:
    """Apply for `count` returns on a SQLite file with handlers inline."""
    (root / "count").write_text(str(count), encoding="utf-8")
    engine, folders = _engine(f"sqlite:///{root / 'embedded.db'}", root, inline=True)
    latencies = []
    began = time.perf_counter()
    for index in range(count):
        started = time.perf_counter()
        _apply(engine, folders, index)
        latencies.append((time.perf_counter() - started) * 1000)
    elapsed = time.perf_counter() - began
    engine.db.dispose()
    return Run(
        "embedded SQLite, handlers inline",
        count / elapsed,
        statistics.median(latencies),
        _p95(latencies),
        count,
    )


def on_postgres(url: str, root: Path, count: int, workers: int, *, queued: bool = False) -> Run:
    """`workers` worker processes take in `count` returns applied meanwhile, or, with
    `queued`, applied for before the workers start (the time is then the workers'
    alone: from their start until the queue is empty)."""
    (root / "count").write_text(str(count), encoding="utf-8")
    with postgres_schema(url) as schema_url:
        engine, folders = _engine(schema_url, root, inline=False)
        env = command_environment(
            root,
            ARTRETURNS_DB=schema_url,
            ARTRETURNS_DATA=str(folders.root),
            ARTRETURNS_NOW=APPLIED.isoformat(),
            ARTRETURNS_INLINE_HANDLERS="off",
        )
        env.pop("ARTRETURNS_USER", None)
        logs = [root / f"worker-{n}.log" for n in range(workers)]
        program = Path(sys.executable).parent / "artreturns"
        if queued:
            for index in range(count):
                _apply(engine, folders, index)
        processes = [
            subprocess.Popen(  # noqa: S603 - our own executable and arguments
                [str(program), "--as", ACTOR, "worker", "--poll", "0.02", "--name", f"b{n}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log.open("w", encoding="utf-8"),
            )
            for n, log in enumerate(logs)
        ]
        try:
            if not queued:
                time.sleep(1.5)  # the workers start (imports, connections) first
            began = time.perf_counter()
            if not queued:
                for index in range(count):
                    _apply(engine, folders, index)
            deadline = time.monotonic() + DRAIN_LIMIT
            while engine.job_count("service"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not drain the queue in time")
                time.sleep(0.02)
            elapsed = time.perf_counter() - began
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
            engine.db.dispose()
    lines = [
        json.loads(text) for log in logs for text in log.read_text().splitlines() if text[:1] == "{"
    ]
    latencies = [float(line["ms"]) for line in lines]
    if queued:  # the workers' own time: the first job's start to the last one's end
        ends = [datetime.fromisoformat(line["at"]).timestamp() for line in lines]
        starts = [end - float(line["ms"]) / 1000 for end, line in zip(ends, lines, strict=True)]
        elapsed = max(ends) - min(starts)
    label = f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}"
    label += ", returns queued first" if queued else ", returns applied meanwhile"
    return Run(
        label, count / elapsed, statistics.median(latencies), _p95(latencies), len(latencies)
    )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(
    report: Report,
    url: str,
    count: int,
    worker_counts: tuple[int, ...] = (1, 2, 4),
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Every run, side by side, then the ratios the targets are about: the workers'
    own rate (returns queued first) for how they scale, the rate a desk sees (returns
    applied while one worker runs) against embedded SQLite."""
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="artreturns-bench-workers-") as tmp:
        root = Path(tmp)

        def place(name: str) -> Path:
            folder = root / name
            folder.mkdir()
            return folder

        runs.append(embedded(place("embedded"), count))
        progress(f"{runs[-1].label}: {runs[-1].rate:,.1f} returns/s")
        runs.append(on_postgres(url, place("pg-live"), count, 1))
        progress(f"{runs[-1].label}: {runs[-1].rate:,.1f} returns/s")
        for workers in worker_counts:
            runs.append(on_postgres(url, place(f"pg-{workers}"), count, workers, queued=True))
            progress(f"{runs[-1].label}: {runs[-1].rate:,.1f} returns/s")
    note = f"{count} returns taken in (4 service tasks each)"
    for run in runs:
        report.add(f"{run.label}: throughput", run.rate, "returns/s", note)
        what = (
            "per apply (the command and its four handlers)"
            if "embedded" in run.label
            else "per job (its handlers and their save, the claim excluded)"
        )
        report.add(
            f"{run.label}: latency p50 / p95",
            run.p50,
            "ms",
            f"p95 {run.p95:,.1f} ms; {what}; {run.steps} measured",
        )
    from engine.bench import bare_rate

    report.add(
        "ceiling: bare SpiffWorkflow, in memory",
        bare_rate(300),
        "instances/s",
        "the engine benchmark's ten-step process, as the library ships: the return "
        "procedure's service tasks are the engine's, SpiffWorkflow alone cannot run them",
    )
    queued = {run.label.split(",")[1].strip(): run for run in runs if "queued first" in run.label}
    live = next(run for run in runs if "applied meanwhile" in run.label)
    if "1 worker" in queued and "2 workers" in queued:
        report.add(
            "2 workers / 1 worker, returns queued first",
            queued["2 workers"].rate / queued["1 worker"].rate,
            "x",
            "target at least 1.5 x",
        )
    report.add(
        "PostgreSQL 1 worker / embedded SQLite, returns applied meanwhile",
        live.rate / runs[0].rate * 100,
        "%",
        "target at least 50 %",
    )


__all__ = ["Run", "embedded", "measure", "on_postgres"]
