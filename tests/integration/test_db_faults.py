"""A database that refuses writes (read-only, or its disk full): every mutating command
ends with a clear error and a non-zero exit code, never a traceback, and leaves the
database as it was (instances, histories, jobs: every row), the histories verifying.
Once writes are allowed again, the same commands succeed.

SQLite read-only three ways: the file opened read-only (`mode=ro`, everywhere), the
file system mounted read-only (a tmpfs remounted `ro`; needs root) and the file's
permissions (chmod; not as root, whom permissions do not stop). A full disk two ways:
a small tmpfs filled to the last byte (needs root), else emulated with SQLite's
`max_page_count` set by a test hook on every connection, where only commands that
need new pages are sure to be refused. PostgreSQL: a database of the test's own with
`default_transaction_read_only` on.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import OperationalError
from support import BPMN, PG_ENV, prepare_returns
from test_worker_faults import LEASE, Workers, _check, _drain, _drive

import cli
from engine import ConfigurationError, Engine
from engine.persistence import normalise_url
from engine.worker import Worker, unreachable
from handlers.bench import _order

READ_ONLY = "is read-only; nothing was saved"
FULL = "is full; nothing was saved"
CLEAN_ENV = ("ARTRETURNS_DB", "ARTRETURNS_NOW", "ARTRETURNS_USER", "ARTRETURNS_INLINE_HANDLERS")


@dataclass
class Desk:
    """A database with returns in several states, and the mutating commands to try
    on it, each of which writes when the database lets it."""

    url: str  # as the commands get it (--db)
    engine: Engine
    data: Path
    rmas: list[str]
    extra_orders: Path

    def commands(self) -> list[tuple[str, list[str], str]]:
        """(name, arguments, acting user) of every mutating command, in an order in
        which each succeeds on a database that takes writes."""
        first, second, third, _queued = self.rmas
        later = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [
            ("orders import", ["orders", "import", str(self.extra_orders)], "owner"),
            (
                "apply",
                [
                    *("apply", "--order", "B-000004", "--artwork", "BW-000004"),
                    *("--type", "return", "--reason", "no_reason", "--description", "Sealed."),
                ],
                "cs-ann",
            ),
            (
                "complete",
                [
                    *("complete", f"{first}:approve_return"),
                    *("--set", "decision=approve", "--set", "note=ok"),
                ],
                "cs-ann",
            ),
            ("claim", ["claim", f"{second}:approve_return"], "cs-ann"),
            ("comment", ["comment", third, "Customer called."], "cs-ann"),
            ("cancel", ["cancel", third, "--reason", "customer withdrew"], "cs-ann"),
            ("worker", ["worker", "--once", "--max-jobs", "1"], "ops-bot"),
            ("run-due", ["--now", later, "run-due"], "ops-bot"),
            ("deploy", ["deploy", str(BPMN / "gw_parallel.bpmn")], "owner"),
            ("users add", ["users", "add", "ada", "--role", "admin"], "owner"),
        ]

    def run(self, args: list[str], actor: str) -> Any:
        env = dict.fromkeys(CLEAN_ENV) | {
            "ARTRETURNS_DATA": str(self.data),
            "ARTRETURNS_INLINE_HANDLERS": "off",
        }
        return CliRunner().invoke(
            cli.cli,
            ["--db", self.url, "--as", actor, *args],
            env=env,
            prog_name="artreturns",
            catch_exceptions=False,  # an unexpected exception fails the test
        )

    def refused(self, expected: str, names: set[str] | None = None) -> list[str]:
        """Run the commands; each must fail with `expected` in its message."""
        seen = []
        for name, args, actor in self.commands():
            if names is not None and name not in names:
                continue
            result = self.run(args, actor)
            assert result.exit_code != 0, f"{name} succeeded on a database refusing writes"
            assert "Traceback" not in result.output, result.output
            assert "Error: " in result.output, result.output
            assert expected in result.output, f"{name}: {result.output}"
            seen.append(name)
        return seen

    def accepted(self, names: set[str] | None = None) -> None:
        for name, args, actor in self.commands():
            if names is None or name in names:
                result = self.run(args, actor)
                assert result.exit_code == 0, f"{name}: {result.output}"

    def verify(self) -> None:
        for instance in self.engine.instances():
            assert self.engine.verify(str(instance.id)) is None, instance.label


def _desk(url: str, root: Path) -> Desk:
    """Four returns: three waiting for approval, one whose first service task is
    queued; one more order imported but not applied for."""
    engine, _folders, prices = prepare_returns(url, root, orders=5, applied=4)
    worker = Worker([engine], actor="ops-bot", name="setup", once=True, max_jobs=3)
    assert worker.run().outcomes == {"done": 3}
    extra = root / "more-orders.csv"
    row = _order(90, declined=False)
    with extra.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    rmas = sorted(prices)
    assert sorted(t.business_key or "" for t in engine.tasks()) == rmas[:3]
    assert [j.business_key for j in engine.jobs() if j.kind == "service"] == rmas[3:]
    return Desk(url, engine, root / "data", rmas, extra)


def _dump(url: str | URL) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table."""
    reader = create_engine(url)
    try:
        with reader.connect() as conn:
            return {
                table: sorted(
                    (tuple(row) for row in conn.execute(text(f'SELECT * FROM "{table}"'))),
                    key=repr,
                )
                for table in sorted(inspect(conn).get_table_names())
            }
    finally:
        reader.dispose()


# -- SQLite, read-only --------------------------------------------------------------


def _root() -> bool:
    return os.geteuid() == 0


@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only), unmounted afterwards."""
    path.mkdir()
    if not _root() or shutil.which("mount") is None:
        pytest.skip("mounting a file system needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def test_a_read_only_sqlite_file_refuses_every_change(tmp_path: Path) -> None:
    """Opened read-only (`mode=ro`): reads work, every change is refused."""
    path = tmp_path / "engine.db"
    desk = _desk(f"sqlite:///{path}", tmp_path)
    desk.engine.db.dispose()
    before = _dump(f"sqlite:///{path}")
    desk.url = f"sqlite:///file:{path}?mode=ro&uri=true"
    refused = desk.refused(READ_ONLY)
    assert len(refused) == len(desk.commands())
    assert _dump(f"sqlite:///{path}") == before
    desk.verify()
    desk.url = f"sqlite:///{path}"
    desk.accepted()
    desk.verify()


def test_a_sqlite_file_on_a_read_only_mount_refuses_every_change(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "mnt", "64m") as mount:
        url = f"sqlite:///{mount / 'engine.db'}"
        desk = _desk(url, tmp_path)
        desk.engine.db.dispose()  # the write-ahead log is checkpointed and removed
        before = _dump(url)
        _remount(mount, "ro")
        try:
            desk.refused(READ_ONLY)
            immutable = f"sqlite:///file:{mount / 'engine.db'}?immutable=1&uri=true"
            assert _dump(immutable) == before
        finally:
            _remount(mount, "rw")
        desk.verify()
        desk.accepted()
        desk.verify()
        desk.engine.db.dispose()


def test_a_sqlite_file_the_user_may_not_write_refuses_every_change(tmp_path: Path) -> None:
    if _root():
        pytest.skip("root writes whatever the permissions say; the read-only mount covers it")
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "engine.db"
    desk = _desk(f"sqlite:///{path}", tmp_path)
    desk.engine.db.dispose()
    before = _dump(f"sqlite:///{path}")
    path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        desk.refused(READ_ONLY)
        assert _dump(f"sqlite:///file:{path}?immutable=1&uri=true") == before
    finally:
        folder.chmod(stat.S_IRWXU)
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    desk.verify()
    desk.accepted()
    desk.verify()


# -- SQLite, disk full ----------------------------------------------------------------


def _fill(folder: Path) -> None:
    """Write to `folder` until its file system has no byte left."""
    chunk = b"\0" * 65536
    with (folder / "filler").open("wb", buffering=0) as filler:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    filler.write(chunk[:size])
                except OSError:
                    break
    assert shutil.disk_usage(folder).free < 4096


def test_a_full_disk_refuses_every_change(tmp_path: Path) -> None:
    """A tmpfs filled to the last byte, the write-ahead log emptied first: any write
    needs room the disk does not have."""
    import sqlite3

    with _tmpfs(tmp_path / "mnt", "64m") as mount:
        path = mount / "engine.db"
        desk = _desk(f"sqlite:///{path}", tmp_path)
        desk.engine.db.dispose()
        # Held open, it keeps the write-ahead log and its index: a command then only
        # lacks room to write, not to open the database.
        holder = sqlite3.connect(path)
        try:
            holder.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            before = _dump(f"sqlite:///{path}")
            _fill(mount)
            desk.refused(FULL)
            assert _dump(f"sqlite:///{path}") == before
            (mount / "filler").unlink()
            desk.verify()
            desk.accepted()
            desk.verify()
        finally:
            holder.close()
            desk.engine.db.dispose()


def test_a_database_at_its_page_limit_refuses_what_needs_room(tmp_path: Path) -> None:
    """Emulated (no mount needed): SQLite's `max_page_count` held at the database's
    size on every connection, by a test hook. Commands that need new pages (a new
    return, a new diagram) are refused; the rows stay as they were."""
    path = tmp_path / "engine.db"
    desk = _desk(f"sqlite:///{path}", tmp_path)
    desk.engine.db.dispose()
    before = _dump(f"sqlite:///{path}")

    def at_limit(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    hook: Callable[..., None] = at_limit
    event.listen(SqlEngine, "connect", hook)
    try:
        assert desk.refused(FULL, {"apply", "deploy"}) == ["apply", "deploy"]
    finally:
        event.remove(SqlEngine, "connect", hook)
    after = _dump(f"sqlite:///{path}")
    # `apply` takes its RMA number in a transaction of its own, small enough to fit,
    # and voids it when the return cannot be started: numbers have no gaps.
    [voided] = set(after.pop("rma_number")) - set(before.pop("rma_number"))
    assert voided[:2] == ("RMA-2026-000005", 2026)
    assert "void" in voided
    assert after == before
    desk.verify()
    desk.accepted({"orders import", "apply", "deploy"})


# -- PostgreSQL, read-only ---------------------------------------------------------------


@pytest.fixture
def own_pg_database() -> Iterator[tuple[URL, SqlEngine]]:
    """A database of the test's own on the configured server (dropped afterwards), and
    an administrator's connection to the server's database."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        _cannot(f"PostgreSQL not configured: set {PG_ENV} to a SQLAlchemy URL to run this")
    base = normalise_url(str(raw))
    name = f"artreturns_ro_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # a server that is configured must be usable
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name), admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_a_read_only_postgresql_database_refuses_every_change(
    own_pg_database: tuple[URL, SqlEngine], tmp_path: Path
) -> None:
    url, admin = own_pg_database
    text_url = url.render_as_string(hide_password=False)
    desk = _desk(text_url, tmp_path)
    desk.engine.db.dispose()
    before = _dump(normalise_url(text_url))
    with admin.connect() as conn:
        conn.execute(
            text(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on')
        )
    try:
        desk.refused(READ_ONLY)
        assert _dump(normalise_url(text_url)) == before
        desk.verify()
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = off')
            )
    desk.engine.db.dispose()  # its connections began read-only
    desk.accepted()
    desk.verify()
    desk.engine.db.dispose()


# -- a database that goes away and comes back -----------------------------------------


def _lost_connection() -> ConfigurationError:
    """What the engine raises when the server is down (translated as it is)."""
    driver = OSError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")
    error = ConfigurationError("cannot reach the database")
    error.__cause__ = OperationalError("SELECT 1", {}, driver)
    return error


def test_a_worker_that_loses_its_database_waits_releases_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is lost while a job runs: the worker logs it, does not stop,
    releases the job once the database answers and runs it then."""
    desk = _desk(f"sqlite:///{tmp_path / 'engine.db'}", tmp_path)
    engine = desk.engine
    real = engine.run_job
    lost: list[int | None] = []

    def once_unreachable(job: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(job.id)
            raise _lost_connection()
        return real(job, **kwargs)

    monkeypatch.setattr(engine, "run_job", once_unreachable)
    lines: list[dict[str, Any]] = []
    worker = Worker([engine], actor="ops-bot", name="w", once=True, poll=0.01, log=lines.append)
    report = worker.run()
    assert report.errors == []
    assert (report.outages, report.outcomes) == (1, {"done": 1})
    events = [line.get("event", "job") for line in lines]
    assert events == ["database unreachable", "database reachable again", "job"]
    assert lines[0]["job"] == lost[0] == lines[2]["job"]  # released, then run
    assert [j.kind for j in engine.jobs()] == ["timer"] * 4  # nothing held, none left
    desk.verify()
    engine.db.dispose()


def test_an_unexpected_error_stops_the_worker_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = _desk(f"sqlite:///{tmp_path / 'engine.db'}", tmp_path)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(desk.engine, "run_job", broken)
    report = Worker([desk.engine], actor="ops-bot", name="w", once=True).run()
    assert report.errors == ["w/1: RuntimeError: a bug"]
    desk.engine.db.dispose()


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster of the test's own, run as the `postgres` OS user
    when the test runs as root (PostgreSQL refuses root)."""

    bindir: Path
    folder: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        log = str(self.folder / "server.log")
        done = self.run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", log, "-o", options)
        assert done.returncode == 0, done.stdout + done.stderr

    def stop(self, mode: str) -> None:
        done = self.run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", mode)
        assert done.returncode == 0, done.stdout + done.stderr


def _postgres_binaries() -> Path | None:
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _cannot(reason: str) -> None:
    """Skip, or fail in CI, where every PostgreSQL test must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    import pwd
    import socket
    import tempfile

    bindir = _postgres_binaries()
    if bindir is None:
        _cannot("no PostgreSQL server binaries (initdb, pg_ctl) found")
    assert bindir is not None
    folder = Path(tempfile.mkdtemp(prefix="artreturns-pg-"))
    as_user: list[str] = []
    if _root():
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _cannot("running as root and there is no postgres user to run a cluster as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    made = Cluster(bindir, folder, port, as_user)
    created = made.run(
        "initdb", "-D", str(made.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
    )
    if created.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        _cannot(f"cannot create a PostgreSQL cluster: {created.stderr.strip()[-500:]}")
    made.start()
    try:
        yield made
    finally:
        made.run("pg_ctl", "stop", "-D", str(made.data), "-m", "immediate")
        shutil.rmtree(folder, ignore_errors=True)


RESTART_RETURNS = int(os.environ.get("ARTRETURNS_RESTART_RETURNS", "150"))
DOWN = 3.0  # seconds the server stays down each time


@dataclass
class Outage:
    mode: str
    stopped: datetime
    started: datetime
    #: Returns not yet closed when the server stopped (the outage met work in flight).
    open_returns: int


class Steady(Workers):
    """Worker processes left running: what goes away is the database."""

    def supervise(self) -> None:
        self._stop.wait()


class Restarts(threading.Thread):
    """Stops the cluster (`-m fast`, later `-m immediate`), keeps it down DOWN seconds,
    starts it again; notes when, and how much work was open."""

    def __init__(self, cluster: Cluster, url: str, returns: int) -> None:
        super().__init__(name="restarts")
        self.cluster = cluster
        self.url = url
        self.returns = returns
        self.outages: list[Outage] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for mode, after in (("fast", 5.0), ("immediate", 8.0)):
                time.sleep(after)
                counter = create_engine(normalise_url(self.url))
                with counter.connect() as conn:
                    closed = conn.execute(
                        text("SELECT count(*) FROM rma_number WHERE status = 'closed'")
                    ).scalar_one()
                counter.dispose()
                stopped = datetime.now(UTC)
                self.cluster.stop(mode)
                time.sleep(DOWN)
                self.cluster.start()
                started = datetime.now(UTC)
                self.outages.append(Outage(mode, stopped, started, self.returns - closed))
        except BaseException as exc:
            self.error = exc


def _drive_through_outages(engine: Engine, prices: dict[str, Any], workers: Workers) -> int:
    """Act as the operators until every return is closed; a command that met the
    database down is tried again, as a person would. How many times that happened."""
    met = 0
    while True:
        try:
            _drive(engine, prices, workers)
            return met
        except Exception as exc:
            if not unreachable(exc):
                raise
            met += 1
            time.sleep(0.5)


def _started(logs: Path, count: int) -> None:
    """Wait until every worker has run a job (their start takes a while)."""
    deadline = time.monotonic() + 120
    while sum(1 for lines in _log_lines(logs).values() if lines) < count:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)


def _log_lines(logs: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for log in sorted(logs.glob("worker-*.log")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        found[log.stem] = [json.loads(line) for line in lines if line.startswith("{")]
    return found


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_outlive_a_database_restart(cluster: Cluster, tmp_path: Path) -> None:
    """Four worker processes of two threads each run the returns while the server is
    stopped twice (fast, then immediate: a crash and its recovery) and started again:
    no worker stops; each logs the lost database and its return; every return ends,
    refunded once; no job is left held; every history verifies."""
    engine, folders, prices = prepare_returns(cluster.url, tmp_path, RESTART_RETURNS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTRETURNS_")} | {
        "ARTRETURNS_DB": cluster.url,
        "ARTRETURNS_INLINE_HANDLERS": "off",
        "ARTRETURNS_DATA": str(folders.root),
    }
    argv = [
        *(sys.executable, "-c", "import cli\ncli.main()\n", "--as", "ops-bot", "worker"),
        *("--concurrency", "2", "--lease", str(LEASE), "--poll", "0.1", "--backoff", "0.2"),
    ]
    restarts = Restarts(cluster, cluster.url, len(prices))
    began = time.monotonic()
    try:
        with Steady.running(argv, env, tmp_path) as workers:
            _started(tmp_path, len(workers.processes))
            restarts.start()
            met = _drive_through_outages(engine, prices, workers)
            restarts.join()
            assert restarts.error is None, restarts.error
            _drain(engine)
        codes = [process.returncode for process in workers.processes]
        time.sleep(LEASE + 1)  # a lease held when a worker stopped runs out
        _check(engine, prices, faults=False)
    finally:
        engine.db.dispose()
    took = time.monotonic() - began
    assert codes == [0] * len(codes)  # stopped by SIGTERM, not by an error
    assert [o.mode for o in restarts.outages] == ["fast", "immediate"]
    assert all(o.open_returns > 0 for o in restarts.outages), restarts.outages
    logs = _log_lines(tmp_path)
    report = []
    for outage in restarts.outages:
        first_jobs, first_back = [], []
        for worker, lines in logs.items():
            times = [(datetime.fromisoformat(line["at"]), line) for line in lines]
            lost = [at for at, line in times if line.get("event") == "database unreachable"]
            back = [
                at
                for at, line in times
                if line.get("event") == "database reachable again" and at >= outage.started
            ]
            assert any(outage.stopped <= at <= outage.started for at in lost), worker
            assert back, f"{worker} never said the database was back"
            first_back.append(back[0])
            jobs = [at for at, line in times if "outcome" in line and at >= outage.started]
            first_jobs += jobs[:1]
        assert first_jobs, "no job ran after the database came back"
        first = (min(first_jobs) - outage.started).total_seconds()
        back_all = (max(first_back) - outage.started).total_seconds()
        down = (outage.started - outage.stopped).total_seconds()
        report.append(
            f"{outage.mode}: down {down:.1f} s (stop, {DOWN:g} s, start), first job done "
            f"{first:.2f} s after the start, every worker back within {back_all:.2f} s"
        )
    print(
        f"{len(prices)} returns in {took:.0f} s; {met} operator commands met the database "
        f"down; " + "; ".join(report)
    )
