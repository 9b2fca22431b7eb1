"""Soak on PostgreSQL: ARTRETURNS_SOAK_RETURNS returns (10,000 unless told) through the
whole procedure, from the application to the refund and the closing, with the service
tasks run by four `artreturns worker` processes (handlers not inline) and the operators'
and customers' steps taken through the Engine API by three desks (threads of this
process, each with an engine of its own), WINDOW returns in flight at a time.

Each worker's resident memory (VmRSS) is sampled every few seconds. After a warm-up
(the first half of the returns, at most 1,000, closed) it may not grow by more than
MEMORY_BOUND over its level at the end of the warm-up; the run must end within DEADLINE
and never stall for STALL seconds. At the end every return is closed, the ledger holds
exactly one refund per return with the right amount, no service job is queued or any
job held, nothing failed or is an incident, and every history in the database verifies.

It prints the duration, the throughput, each worker's memory (start, peak, end, growth)
and the CPU seconds of the workers, the desks and the database server's processes;
the memory series goes to memory.csv in the test's temporary folder.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import URL
from support import prepare_returns
from test_worker_faults import _act, _drain, customer_message, operator_step

from engine import Engine, Settings
from engine.api import _chained
from engine.history import Break, verify
from engine.persistence.records import EventRecord, InstanceRecord
from handlers import desk
from handlers.bench import _order
from handlers.store import Folders, services_factory

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
RETURNS = int(os.environ.get("ARTRETURNS_SOAK_RETURNS", "10000"))
WORKERS = 4
WINDOW = 200  # returns in flight at once
#: Returns closed before a worker's memory is taken as its baseline: by then each has
#: filled its instance cache (256 instances) with returns at every stage (measured: a
#: worker grows from about 10 MB to 295-320 MB over the first 1,000 returns, then by
#: 10 to 12 MB over the next 9,000; with a task-id cache eight times today's it grew by
#: 13 to 27 MB up to about 4,500 returns and no more after).
WARM_UP = min(1000, RETURNS // 2)
SAMPLE_EVERY = 3.0  # seconds
#: Growth of a worker's resident memory allowed after the warm-up: a tenth of what it
#: holds then. A leak of 4 kB a return would pass it over 9,000 returns.
MEMORY_BOUND = 30 * 1024  # kB
DEADLINE = 60 * 60  # seconds for the run: 10,000 returns took 42 minutes on 2 busy CPUs
STALL = 180  # seconds without a command done or a return closed: something is stuck
DESKS = 3  # operators at work at once, each a thread with an engine of its own
#: The name the run's connections give the server, to find their server processes.
APPLICATION = "artreturns-soak"


def _rss(pid: int) -> int | None:
    """A process's resident memory in kB, from /proc (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def _cpu(pid: int) -> float | None:
    """A process's CPU time (user and system) in seconds, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1]
    except OSError:
        return None
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    at: float  # seconds since the start
    closed: int
    rss: list[int | None]  # kB, one per worker
    cpu: list[float | None]  # seconds, one per worker


@dataclass
class Pool:
    """Worker processes and a thread sampling their memory every few seconds."""

    processes: list[subprocess.Popen[bytes]]
    engine: Engine  # to count the returns closed and find the database's processes
    began: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    database_cpu: dict[int, float] = field(default_factory=dict)  # by server process
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        """Every SAMPLE_EVERY seconds until stopped, and once more then."""
        self.samples.append(self._measure())
        while not self._stop.wait(SAMPLE_EVERY):
            self.samples.append(self._measure())
        self.samples.append(self._measure())

    def _measure(self) -> Sample:
        with self.engine.db.engine.connect() as conn:
            closed = conn.execute(
                text("SELECT count(*) FROM rma_number WHERE status = 'closed'")
            ).scalar_one()
            servers = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": APPLICATION},
            ).scalars()
            for pid in servers:  # on this machine, or nothing is found
                self.database_cpu[pid] = _cpu(pid) or self.database_cpu.get(pid, 0.0)
        return Sample(
            time.monotonic() - self.began,
            int(closed),
            [_rss(p.pid) for p in self.processes],
            [_cpu(p.pid) for p in self.processes],
        )

    def alive(self) -> None:
        for slot, process in enumerate(self.processes):
            assert process.poll() is None, f"worker w{slot} stopped ({process.returncode})"

    @classmethod
    @contextmanager
    def running(
        cls, argv: list[str], env: dict[str, str], logs: Path, engine: Engine
    ) -> Iterator[Pool]:
        processes = []
        for slot in range(WORKERS):
            log = (logs / f"worker-{slot}.log").open("ab")
            processes.append(
                subprocess.Popen(
                    [*argv, "--name", f"w{slot}"], env=env, stdout=log, stderr=log, cwd=ROOT
                )
            )
        pool = cls(processes, engine)
        sampler = threading.Thread(target=pool.sample)
        sampler.start()
        try:
            yield pool
        finally:
            pool._stop.set()
            sampler.join()
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


@dataclass
class Desk:
    """Operators and customers: apply for `rows` while fewer than their share of WINDOW
    are in flight, and take every step of theirs that the returns in flight wait for."""

    engine: Engine
    folders: Folders
    rows: list[dict[str, Any]]
    prices: dict[str, Decimal] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    closed: int = 0
    commands: int = 0  # done, applications included
    spent: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timed(self, what: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.spent[what] += time.perf_counter() - began

    def act(self, what: str, command: Callable[[], Any]) -> bool:
        """Run an operator's or customer's command (`_act`), timed and counted."""
        with self.timed(what):
            done = _act(command)
        self.commands += done
        return done

    def top_up(self) -> None:
        while len(self.in_flight) < WINDOW // DESKS and len(self.prices) < len(self.rows):
            row = self.rows[len(self.prices)]
            with self.timed("apply"):
                result = desk.apply(
                    self.engine,
                    self.folders,
                    order_number=row["order_number"],
                    artwork_ids=[row["artwork_id"]],
                    request_type="return",
                    reason="no_reason",
                    description="Changed my mind; still sealed.",
                    actor="cs-ann",
                )
            self.commands += 1
            rma = str(result.instance.label)
            self.prices[rma] = Decimal(row["price"])
            self.in_flight.add(rma)

    def step(self) -> bool:
        """One round over the returns in flight; whether anything was done."""
        acted = False
        other: list[tuple[str, str]] = []
        with self.timed("list tasks"):
            tasks = self.engine.tasks()
            waits = self.engine.tasks(kinds=("message",), states=("WAITING",))
        for task in tasks:
            rma = task.business_key or ""
            if rma not in self.in_flight:  # a closed return's follow-up is not ours
                continue
            step = operator_step(task.bpmn_id, rma, self.prices)
            if step is None:  # a closing return's follow-up, or a step not expected
                other.append((rma, task.bpmn_id))
                continue
            data, actor = step
            acted |= self.act(
                task.bpmn_id, partial(self.engine.complete, task.id, data, actor=actor)
            )
        for wait in waits:
            rma = wait.business_key or ""
            message = customer_message(wait.bpmn_id, rma)
            if rma in self.in_flight and message is not None:
                name, payload = message
                acted |= self.act(
                    name, partial(self.engine.message, rma, name, payload, actor="customer")
                )
        with self.timed("closed"):
            done = self._closed_in_flight()
        self.in_flight -= done
        self.closed += len(done)
        stuck = [(rma, step) for rma, step in other if rma in self.in_flight]
        assert not stuck, f"unexpected steps: {stuck[:5]}"
        return acted or bool(done)

    def run(self, stop: threading.Event, errors: list[BaseException]) -> None:
        try:
            while self.closed < len(self.rows) and not stop.is_set():
                self.top_up()
                if not self.step():
                    stop.wait(0.1)
        except BaseException as exc:  # for the test's thread to raise
            errors.append(exc)
        finally:
            self.engine.db.dispose()

    def _closed_in_flight(self) -> set[str]:
        if not self.in_flight:
            return set()
        query = text(
            "SELECT number FROM rma_number WHERE status = 'closed' AND number IN :numbers"
        ).bindparams(bindparam("numbers", expanding=True))
        with self.engine.db.engine.connect() as conn:
            found = conn.execute(query, {"numbers": sorted(self.in_flight)})
            return {str(row[0]) for row in found}


def _memory(samples: list[Sample]) -> list[tuple[int, int, int, int]]:
    """Per worker: its memory (kB) at the end of the warm-up, its peak after it, at the
    end, and its growth (the peak over the warm-up level)."""
    warm = [s for s in samples if s.closed >= WARM_UP]
    assert warm, "no sample after the warm-up"  # the last is taken at the end
    found = []
    for slot in range(WORKERS):
        series = [r for s in warm if (r := s.rss[slot]) is not None]
        start, peak, end = series[0], max(series), series[-1]
        found.append((start, peak, end, peak - start))
    return found


def _write_series(samples: list[Sample], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "seconds",
                "closed",
                *(f"w{n}_rss_kb" for n in range(WORKERS)),
                *(f"w{n}_cpu_s" for n in range(WORKERS)),
            ]
        )
        for s in samples:
            rss = ("" if r is None else r for r in s.rss)
            cpu = ("" if c is None else f"{c:.1f}" for c in s.cpu)
            writer.writerow([f"{s.at:.1f}", s.closed, *rss, *cpu])


def _settled(engine: Engine, prices: dict[str, Decimal]) -> None:
    """Every return refunded once, with its price; nothing queued, held, failed, archived
    or an incident."""
    with engine.db.engine.connect() as conn:
        refunds = conn.execute(
            text(
                "SELECT rma, count(*), min(amount_minor), max(amount_minor), min(currency),"
                " max(currency) FROM ledger_entry WHERE kind = 'refund' GROUP BY rma"
            )
        ).all()
        jobs = conn.execute(  # the follow-ups' timers (a month on) stay queued
            text("SELECT count(*) FROM job WHERE kind = 'service' OR locked_by IS NOT NULL")
        ).scalar_one()
        archived = conn.execute(text("SELECT count(*) FROM archive")).scalar_one()
        failed = conn.execute(
            text("SELECT count(*) FROM event WHERE kind = 'handler_failed'")
        ).scalar_one()
    paid = {rma: (count, low, high, c1, c2) for rma, count, low, high, c1, c2 in refunds}
    assert paid.keys() == prices.keys()
    for rma, price in prices.items():
        minor = int(price * 100)
        assert paid[rma] == (1, minor, minor, "CNY", "CNY"), rma  # once, the right amount
    assert (jobs, archived, failed) == (0, 0, 0)  # none queued or held, none archived
    assert engine.incidents() == []


def _chains(engine: Engine) -> tuple[int, list[tuple[str, Break]]]:
    """Every instance's hash chain recomputed in one pass over the event table
    (`Engine.verify`, one instance at a time, takes minutes at this size): how many
    instances, and the first break of each broken chain."""
    broken: list[tuple[str, Break]] = []
    with engine.db.read() as session:
        heads = {
            r.id: r
            for r in session.execute(
                select(
                    InstanceRecord.id,
                    InstanceRecord.uid,
                    InstanceRecord.business_key,
                    InstanceRecord.event_count,
                    InstanceRecord.head_hash,
                )
            )
        }
        events = session.scalars(
            select(EventRecord)
            .order_by(EventRecord.instance_id, EventRecord.seq)
            .execution_options(yield_per=5000)
        )
        seen: set[int] = set()

        def check(id_: int, chain: Iterable[EventRecord]) -> None:
            head = heads[id_]
            chained = (_chained(head.uid, e) for e in chain)
            found = verify(chained, head.event_count, head.head_hash)
            if found is not None:
                broken.append((head.business_key or head.uid, found))

        for id_, chain in groupby(events, key=attrgetter("instance_id")):
            seen.add(id_)
            check(id_, chain)
        for id_ in heads.keys() - seen:  # an instance without events must have none
            check(id_, ())
    return len(heads), broken


def _run(desks: list[Desk], pool: Pool) -> None:
    """Let the desks work until every return is closed, within DEADLINE and never
    STALL seconds without a command done or a return closed; every worker must stay
    up."""
    stop = threading.Event()
    errors: list[BaseException] = []
    threads = [threading.Thread(target=d.run, args=(stop, errors)) for d in desks]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        moved, progress = time.monotonic(), 0
        while (closed := sum(d.closed for d in desks)) < RETURNS:
            if errors:
                raise errors[0]
            now = time.monotonic()
            assert now < deadline, f"{closed} of {RETURNS} closed in time"
            if (now_progress := closed + sum(d.commands for d in desks)) > progress:
                moved, progress = now, now_progress
            assert now - moved < STALL, f"nothing done for {STALL} s ({closed} closed)"
            pool.alive()
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def _summary(desks: list[Desk], pool: Pool, elapsed: float, cpu: float) -> None:
    memory = _memory(pool.samples)
    print(
        f"\n{RETURNS} returns closed in {elapsed:.0f} s ({RETURNS / elapsed:.2f} returns/s), "
        f"{WORKERS} workers, {DESKS} desks"
    )
    print(f"memory after {WARM_UP} returns closed (kB), per worker: start / peak / end / growth")
    for slot, (start, peak, end, growth) in enumerate(memory):
        print(f"  w{slot}: {start} / {peak} / {end} / {growth}")
    workers = sum(c for c in pool.samples[-1].cpu if c is not None)
    database = sum(pool.database_cpu.values())
    print(
        f"CPU seconds: workers {workers:.0f}, this process {cpu:.0f}, database "
        f"{database:.0f}; {(workers + cpu + database) / RETURNS * 1000:.0f} ms a return"
    )
    spent: defaultdict[str, float] = defaultdict(float)  # seconds, by what was done
    for d in desks:
        for what, seconds in d.spent.items():
            spent[what] += seconds
    ranked = sorted(spent.items(), key=lambda item: -item[1])
    print("desks' time: " + ", ".join(f"{what} {sec:.0f} s" for what, sec in ranked))
    print(f"series: memory.csv ({len(pool.samples)} samples)")


def test_soak_returns_flow_with_flat_worker_memory(pg_url: URL, tmp_path: Path) -> None:
    url = pg_url.update_query_dict({"application_name": APPLICATION}).render_as_string(
        hide_password=False
    )
    folders = Folders(tmp_path / "data")

    def engine() -> Engine:
        return Engine(
            url, settings=Settings(inline_handlers=False), services=services_factory(folders)
        )

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTRETURNS_")} | {
        "ARTRETURNS_DB": url,
        "ARTRETURNS_INLINE_HANDLERS": "off",
        "ARTRETURNS_DATA": str(folders.root),
    }
    argv = [
        sys.executable,
        "-c",
        "import cli\ncli.main()\n",
        *("--as", "ops-bot", "worker", "--poll", "0.1"),
    ]
    owner, _, _ = prepare_returns(url, tmp_path, RETURNS, applied=0)
    rows = [_order(index, declined=False) for index in range(RETURNS)]  # as imported
    try:
        desks = [Desk(engine(), folders, rows[n::DESKS]) for n in range(DESKS)]
        with Pool.running(argv, env, tmp_path, owner) as pool:
            began, cpu = time.monotonic(), time.process_time()
            try:
                _run(desks, pool)
                _drain(owner)  # what the follow-ups queued after closing
            finally:  # the series also when the run fails: it shows where
                _write_series(pool.samples, tmp_path / "memory.csv")
            elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
        _summary(desks, pool, elapsed, cpu)
        for slot, (_, _, _, growth) in enumerate(_memory(pool.samples)):
            assert growth < MEMORY_BOUND, f"w{slot} grew by {growth} kB after the warm-up"
        began = time.monotonic()
        prices = {rma: price for d in desks for rma, price in d.prices.items()}
        _settled(owner, prices)
        verified, broken = _chains(owner)
        assert verified == RETURNS  # an instance a return
        assert broken == []
        print(f"checked; {verified} histories verified in {time.monotonic() - began:.0f} s")
        with owner.db.engine.begin() as conn:  # the check finds a change made behind it
            conn.execute(
                text("UPDATE event SET actor = 'mallory' WHERE id = (SELECT max(id) FROM event)")
            )
        assert len(_chains(owner)[1]) == 1
    except Exception:
        for log in sorted(tmp_path.glob("worker-*.log")):
            sys.stderr.write(log.read_text(encoding="utf-8", errors="replace")[-3000:])
        raise
    finally:
        owner.db.dispose()
