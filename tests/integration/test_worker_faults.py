"""Fault injection on PostgreSQL: returns driven to refund by worker processes while a
supervisor kills one with SIGKILL every few seconds and starts it again.

Afterwards every return is refunded and closed, the ledger holds exactly one refund per
return with the right amount, no job is left held, and every history verifies. With
handler faults injected (the first attempt of one call in five raises), it ends the
same way, with the failed attempts in the histories.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from support import prepare_returns

from engine import ConcurrencyError, Engine, EngineError
from handlers.store import Folders

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
RETURNS = int(os.environ.get("ARTRETURNS_FAULT_RETURNS", "200"))
WORKERS = 4
KILL_EVERY = 2.0  # seconds
LEASE = 3  # seconds: a killed worker's job is taken again this soon
DEADLINE = 20 * 60  # seconds for the whole run
#: What runs before `cli.main()` in a worker process with faults injected.
FAULTS = (
    "import hashlib\n"
    "from engine.registry import Registry\n"
    "_get = Registry.get\n"
    "def _faulty(self, operator):\n"
    "    handler = _get(self, operator)\n"
    "    def wrapped(params, ctx):\n"
    "        digest = hashlib.sha256(ctx.idempotency_key.encode()).digest()\n"
    "        if ctx.attempt == 1 and digest[0] % 5 == 0:\n"
    "            raise RuntimeError('injected fault')\n"
    "        return handler(params, ctx)\n"
    "    return wrapped\n"
    "Registry.get = _faulty\n"
)
ACCEPTED = {"outcome": "accepted", "grade": "excellent", "observations": [], "accessories": []}
APPROVE = {"decision": "approve", "note": "Sealed, within the period"}


@dataclass
class Workers:
    """Worker processes, one of which a supervisor kills and restarts again and again."""

    argv: list[str]
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, slot: int) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{slot}.log").open("ab")
        return subprocess.Popen(
            [*self.argv, "--name", f"w{slot}"],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )

    def supervise(self) -> None:
        chance = random.Random(7)
        while not self._stop.wait(KILL_EVERY):
            slot = chance.randrange(len(self.processes))
            victim = self.processes[slot]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            self.kills += 1
            self.processes[slot] = self.start(slot)

    def stop_killing(self) -> None:
        self._stop.set()

    @classmethod
    @contextmanager
    def running(cls, argv: list[str], env: dict[str, str], logs: Path) -> Iterator[Workers]:
        workers = cls(argv, env, logs)
        workers.processes = [workers.start(slot) for slot in range(WORKERS)]
        supervisor = threading.Thread(target=workers.supervise)
        supervisor.start()
        try:
            yield workers
        finally:
            workers._stop.set()
            supervisor.join()
            for process in workers.processes:
                process.send_signal(signal.SIGTERM)
            for process in workers.processes:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


def _prepare(url: str, root: Path) -> tuple[Engine, Folders, dict[str, Decimal]]:
    """The procedure deployed and RETURNS returns applied for (no handler has run)."""
    return prepare_returns(url, root, RETURNS)


def _closed(engine: Engine) -> set[str]:
    with engine.db.engine.connect() as conn:
        found = conn.execute(text("SELECT number FROM rma_number WHERE status = 'closed'"))
        return {str(row[0]) for row in found}


def _drive(engine: Engine, prices: dict[str, Decimal], workers: Workers) -> None:
    """Act as the operators and the customers until every return is closed: approve,
    ship and deliver the work, inspect it, confirm the refund, answer the survey."""
    deadline = time.monotonic() + DEADLINE
    while (closed := _closed(engine)) != set(prices):
        assert time.monotonic() < deadline, f"{len(closed)} of {len(prices)} closed in time"
        for process in workers.processes:  # a worker that died by itself is a failure
            assert process.poll() in (None, -signal.SIGKILL), "a worker stopped"
        acted = False
        for task in engine.tasks():
            rma = task.business_key or ""
            if rma in closed:  # the follow-up after closing (repeat customers) is not ours
                continue
            step = operator_step(task.bpmn_id, rma, prices)
            if step is None:
                if rma in _closed(engine):  # closed since this round began: its follow-up
                    continue
                pytest.fail(f"{rma}: unexpected step {task.bpmn_id}")
            data, actor = step
            acted |= _act(partial(engine.complete, task.id, data, actor=actor))
        for wait in engine.tasks(kinds=("message",), states=("WAITING",)):
            rma = wait.business_key or ""
            message = customer_message(wait.bpmn_id, rma)
            if message is not None:
                name, payload = message
                acted |= _act(partial(engine.message, rma, name, payload, actor="customer"))
        if not acted:
            time.sleep(0.2)


def operator_step(
    step: str, rma: str, prices: dict[str, Decimal]
) -> tuple[dict[str, Any], str] | None:
    """The data an operator completes one of the return's steps with, and who (None: not
    a step these runs take)."""
    if step == "approve_return":
        return APPROVE, "cs-ann"
    if step == "inspect_work":
        return ACCEPTED, "inspector-ivy"
    if step == "confirm_refund":
        return {"amount": f"{prices[rma]:.2f}", "channel": "original_payment"}, "fin-fay"
    return None


def customer_message(waiting: str, rma: str) -> tuple[str, dict[str, Any]] | None:
    """The customer's message a task waits for (None: not one these runs send)."""
    if waiting == "work_shipped":  # a tracking number of its own: one used twice is refused
        number = "SF" + "".join(c for c in rma if c.isalnum())
        return "return_shipped", {"carrier": "SF Express", "tracking_number": number}
    if waiting == "work_received":
        return "return_received", {}
    if waiting == "wait_confirmation":
        return "customer_confirmation", {"score": 5, "comment": "Thanks"}
    return None


def _service_jobs(engine: Engine) -> int:
    with engine.db.engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM job WHERE kind = 'service'"))
        return int(found.scalar_one())


def _drain(engine: Engine) -> None:
    """Wait for the workers to run every queued service task."""
    deadline = time.monotonic() + 120
    while _service_jobs(engine):
        assert time.monotonic() < deadline, "the workers left service tasks queued"
        time.sleep(0.2)


def _act(command: Any) -> bool:
    """Run an operator's command; one that lost a race with a worker is tried on the next
    round, as an operator would."""
    try:
        command()
    except ConcurrencyError:
        return False
    return True


def _check(engine: Engine, prices: dict[str, Decimal], faults: bool) -> None:
    with engine.db.engine.connect() as conn:
        refunds = conn.execute(
            text(
                "SELECT rma, amount_minor, currency FROM ledger_entry WHERE kind = 'refund' "
                "ORDER BY rma"
            )
        ).all()
        held = conn.execute(
            text("SELECT count(*) FROM job WHERE locked_by IS NOT NULL")
        ).scalar_one()
    by_rma: dict[str, list[tuple[int, str]]] = {}
    for rma, minor, currency in refunds:
        by_rma.setdefault(rma, []).append((minor, currency))
    assert set(by_rma) == set(prices)
    for rma, price in prices.items():
        assert by_rma[rma] == [(int(price * 100), "CNY")], rma  # one refund, the right amount
    assert held == 0
    assert _service_jobs(engine) == 0
    assert engine.incidents() == []
    failed_attempts = 0
    for rma in prices:
        assert engine.verify(rma) is None, rma
        failed_attempts += sum(1 for e in engine.history(rma) if e.kind == "handler_failed")
    if faults:
        assert failed_attempts > 0  # the injected faults were met, and tried again
    else:
        assert failed_attempts == 0
    print(f"{len(prices)} returns, {failed_attempts} failed attempts tried again")


@pytest.mark.parametrize("faults", [False, True], ids=["kills", "kills-and-faults"])
def test_killed_workers_lose_nothing_and_pay_once(
    pg_url: URL, tmp_path: Path, faults: bool
) -> None:
    url = pg_url.render_as_string(hide_password=False)
    engine, folders, prices = _prepare(url, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTRETURNS_")} | {
        "ARTRETURNS_DB": url,
        "ARTRETURNS_INLINE_HANDLERS": "off",
        "ARTRETURNS_DATA": str(folders.root),
    }
    prelude = (FAULTS if faults else "") + "import cli\ncli.main()\n"
    argv = [
        sys.executable,
        "-c",
        prelude,
        *("--as", "ops-bot", "worker", "--lease", str(LEASE), "--poll", "0.1"),
        *("--backoff", "0.2"),
    ]
    try:
        with Workers.running(argv, env, tmp_path) as workers:
            _drive(engine, prices, workers)
            assert workers.kills > 0
            workers.stop_killing()
            print(f"{workers.kills} workers killed")
            _drain(engine)  # what the follow-up queued after closing, retries included
        time.sleep(LEASE + 1)  # leases of the last killed worker run out
        _check(engine, prices, faults)
    except EngineError:
        for log in sorted(tmp_path.glob("worker-*.log")):
            sys.stderr.write(log.read_text(encoding="utf-8", errors="replace")[-3000:])
        raise
    finally:
        engine.db.dispose()
