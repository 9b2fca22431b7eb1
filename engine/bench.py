"""`artreturns bench`: what the engine costs, measured side by side in one run.

1. Throughput: instances per second of a ten-step process with three user tasks,
   end to end through the engine API and persisted on a SQLite file, against the same
   process run in memory by bare SpiffWorkflow. Rounds of the two alternate, so both
   see the same machine; the median round of each is reported, and their ratio.
2. History independence: the cost of one step on an instance whose history holds 10
   events against one whose history holds 1,000. A step must not read or rewrite the
   history it extends, so the ratio should stay near 1.
3. Command speed: whole `artreturns` processes (interpreter, imports, the database,
   the output), timed from outside on a database the caller prepared, each beside its
   target (see `time_commands`).
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from engine.api import Engine
from engine.clock import FixedClock
from engine.errors import EngineError
from engine.registry import Registry
from engine.runner import Settings

PROCESS = Path(__file__).parent / "bench_linear10.bpmn"
PROCESS_ID = "linear10"
ACTOR = "bench"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class Report:
    machine: dict[str, str]
    figures: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.figures.append(Figure(name, value, unit, note))


def machine() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": str(_cpu_count()),
        "spiffworkflow": version("SpiffWorkflow"),
        "sqlalchemy": version("SQLAlchemy"),
        "sqlite": sqlite3.sqlite_version,
        # Other work on the machine slows every figure: say how busy it was.
        "load average at the start": f"{os.getloadavg()[0]:.2f}"
        if hasattr(os, "getloadavg")
        else "unknown",
    }


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL database at `url`, as a URL whose connections
    use it; dropped afterwards."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    target = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    separator = "&" if "?" in target else "?"
    try:
        yield f"{target}{separator}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def _cpu_count() -> int:
    return os.cpu_count() or 1


def _engine(path: Path, cache: bool) -> Engine:
    settings = Settings(instance_cache_size=256 if cache else 0)
    engine = Engine(
        f"sqlite:///{path}", registry=Registry(), clock=FixedClock(START), settings=settings
    )
    engine.init()
    engine.deploy([PROCESS], actor=ACTOR)
    return engine


def _run_engine_instance(engine: Engine, number: int) -> None:
    result = engine.start(PROCESS_ID, {"n": number}, actor=ACTOR)
    while result.instance.status == "running":
        task = result.instance.open_tasks[0]
        result = engine.complete(task.id, {"answer": number}, actor=ACTOR)


def _rate(fn: Callable[[int], object], count: int) -> float:
    began = time.perf_counter()
    for number in range(count):
        fn(number)
    return count / (time.perf_counter() - began)


def bare_rate(count: int) -> float:
    """One round of bare SpiffWorkflow, as shipped, in a separate Python process."""
    script = Path(__file__).parent / "spiff" / "bare.py"
    done = subprocess.run(  # noqa: S603 - our own script, our own interpreter
        [sys.executable, str(script), str(PROCESS), PROCESS_ID, str(count)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    rate: float = json.loads(done.stdout)["rate"]
    return rate


def throughput(
    report: Report,
    workdir: Path,
    instances: int,
    rounds: int,
    progress: Callable[[str], None],
) -> None:
    cached = _engine(workdir / "throughput.db", cache=True)
    uncached = _engine(workdir / "throughput-nocache.db", cache=False)
    runners: list[tuple[str, Callable[[int], object]]] = [
        ("engine", lambda n: _run_engine_instance(cached, n)),
        ("engine-nocache", lambda n: _run_engine_instance(uncached, n)),
    ]
    for _name, fn in runners:  # warm up: imports, caches, the first SQLite pages
        _rate(fn, max(10, instances // 10))
    rates: dict[str, list[float]] = {"bare": [], "engine": [], "engine-nocache": []}
    for round_number in range(1, rounds + 1):
        rates["bare"].append(bare_rate(instances))
        for name, fn in runners:
            rates[name].append(_rate(fn, instances))
        progress(f"throughput round {round_number}/{rounds}")
    bare = statistics.median(rates["bare"])
    engine_rate = statistics.median(rates["engine"])
    nocache_rate = statistics.median(rates["engine-nocache"])
    note = f"median of {rounds} rounds of {instances} instances"
    report.add(
        "bare SpiffWorkflow, in memory",
        bare,
        "instances/s",
        note + "; the library as shipped, in its own process",
    )
    report.add("engine, persisted on SQLite", engine_rate, "instances/s", note)
    report.add(
        "engine, persisted on SQLite, no instance cache",
        nocache_rate,
        "instances/s",
        note + "; every command loads the instance from the database, as one CLI call does",
    )
    report.add("engine / bare", engine_rate / bare * 100, "%", "target at least 25 %")
    report.add("engine without cache / bare", nocache_rate / bare * 100, "%")
    for engine in (cached, uncached):
        engine.db.dispose()


def history_cost(
    report: Report,
    workdir: Path,
    sizes: Sequence[int],
    samples: int,
    progress: Callable[[str], None],
) -> None:
    """Time one step (completing the first user task) on instances whose histories
    were filled with comments to each size; the instance cache is off, so each step
    reads the instance from the database. The steps on the different sizes alternate,
    so that the machine's drift during the run weighs on every size alike."""
    engine = _engine(workdir / "history.db", cache=False)
    prepared: dict[int, list[str]] = {}
    for size in sizes:
        tasks: list[str] = []
        for sample in range(samples):
            started = engine.start(PROCESS_ID, {"n": sample}, actor=ACTOR)
            key = str(started.instance.id)
            for note in range(size - len(started.events)):
                engine.comment(key, f"note {note}", actor=ACTOR)
            tasks.append(started.instance.open_tasks[0].id)
        prepared[size] = tasks
        progress(f"history of {size} events: {samples} instances ready")
    costs: dict[int, list[float]] = {size: [] for size in sizes}
    for sample in range(samples):
        for size in sizes:
            began = time.perf_counter()
            engine.complete(prepared[size][sample], {"answer": 1}, actor=ACTOR)
            costs[size].append(time.perf_counter() - began)
    medians: dict[int, float] = {}
    for size in sizes:
        medians[size] = statistics.median(costs[size])
        report.add(
            f"one step, history of {size:,} events",
            medians[size] * 1000,
            "ms",
            f"median of {samples} instances, steps alternating between the sizes",
        )
    if len(sizes) >= 2:
        small, large = medians[sizes[0]], medians[sizes[-1]]
        report.add(
            f"step cost {sizes[-1]:,} / {sizes[0]:,} events",
            large / small,
            "x",
            "target at most 1.2 x",
        )
    engine.db.dispose()


@dataclass(frozen=True)
class Command:
    """A command timed as a whole process: `argv(run)` gives its arguments for each run
    (run 0 is the warm-up), so that a command that changes something (completing a
    task) can act on something new each time."""

    name: str
    argv: Callable[[int], Sequence[str]]
    #: The most it may take, in milliseconds; None for a figure given for comparison.
    target_ms: float | None = None
    note: str = ""
    #: Another executable than `artreturns` (the bare interpreter, for comparison).
    program: Path | None = None


def command_environment(workdir: Path, **settings: str) -> dict[str, str]:
    """The environment the timed commands run in: this one, plus `settings` (such as
    ARTRETURNS_DB), with Python's bytecode cached under `workdir`, as an installed
    package has it (with PYTHONDONTWRITEBYTECODE set and no cache, every run would
    compile the modules it imports from source first)."""
    env = {**os.environ, **settings, "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_commands(
    report: Report,
    commands: Sequence[Command],
    *,
    env: Mapping[str, str],
    runs: int,
    progress: Callable[[str], None] = lambda _: None,
    executable: Path | None = None,
) -> None:
    """Run each command `runs` times after a warm-up, as the installed `artreturns`
    executable (or `executable`) in a process of its own, with stdout and stderr read
    through pipes; report the median wall time, the best, and the target."""
    program = executable or Path(sys.executable).parent / "artreturns"
    for command in commands:
        times: list[float] = []
        for number in range(runs + 1):
            argv = [str(command.program or program), *command.argv(number)]
            began = time.perf_counter()
            done = subprocess.run(  # noqa: S603 - our own executable and arguments
                argv, env=dict(env), capture_output=True, text=True, check=False
            )
            elapsed = time.perf_counter() - began
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise EngineError(
                    f"timed command failed (exit {done.returncode}): {' '.join(argv[1:])}: {last}",
                    "Run it by hand on the benchmark's database to see why.",
                )
            if number:
                times.append(elapsed)
        median = statistics.median(times) * 1000
        note = f"median of {runs} runs, best {min(times) * 1000:,.0f} ms"
        if command.target_ms is not None:
            verdict = "met" if median < command.target_ms else "NOT met"
            note += f"; target under {command.target_ms:,.0f} ms: {verdict}"
        if command.note:
            note += f"; {command.note}"
        report.add(command.name, median, "ms", note)
        progress(f"timed {command.name}: {median:,.0f} ms")


def run(
    *,
    instances: int = 300,
    rounds: int = 5,
    history_sizes: Sequence[int] = (10, 1000),
    history_samples: int = 25,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    report = Report(machine())
    with tempfile.TemporaryDirectory(prefix="artreturns-bench-") as tmp:
        workdir = Path(tmp)
        throughput(report, workdir, instances, rounds, progress)
        history_cost(report, workdir, history_sizes, history_samples, progress)
    return report


__all__ = ["Command", "Figure", "Report", "command_environment", "run", "time_commands"]
