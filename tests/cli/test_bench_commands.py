"""`artreturns bench --cli-returns N`: whole commands timed on a database of returns.

Only what the benchmark reports is checked, never how fast anything was: the figures
themselves are in docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import URL

import cli as cli_module
from handlers import bench as returns_bench

COMMANDS = [
    "python -c pass",
    "python -c 'import sqlalchemy.orm'",
    "artreturns --help",
    "artreturns tasks (an inspector)",
    "artreturns tasks --all",
    "artreturns tasks --all --csv",
    "artreturns show RMA",
    "artreturns complete TASK",
]


def test_the_stages_leave_enough_returns_waiting_for_approval() -> None:
    stages = [returns_bench.stage_of(index, fresh=8) for index in range(10_000)]
    assert stages[:8] == ["approval"] * 8
    counts = {stage: stages.count(stage) for stage in set(stages)}
    # 1 in 100 at inspection, 2 waiting for the parcel, 2 for approval (and the 8 fresh
    # ones), 5 cancelled, 90 declined.
    assert counts == {
        "inspection": 100,
        "parcel": 200,
        "approval": 8 + 200,
        "cancelled": 500,
        "declined": 8_992,
    }


@pytest.mark.slow
def test_bench_times_the_commands_on_a_database_of_returns(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_module.cli,
        [
            "bench",
            *("--instances", "2", "--rounds", "1", "--history", "5", "--samples", "2"),
            *("--cli-returns", "3", "--cli-runs", "1", "--markdown"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = {
        line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ")
    }
    assert rows["returns in the database"][0] == "3.00"
    for name in COMMANDS:
        value, unit, how = rows[name]
        assert float(value.replace(",", "")) > 0
        assert unit == "ms"
        assert how.startswith("median of 1 runs, best ")
    assert "target under 300 ms" in rows["artreturns tasks --all"][2]
    assert "target under 600 ms" in rows["artreturns complete TASK"][2]
    assert "target" not in rows["artreturns --help"][2]


@pytest.mark.slow
@pytest.mark.postgres
def test_bench_measures_workers_on_postgres(pg_url: URL) -> None:
    from sqlalchemy import create_engine, text

    url = pg_url.render_as_string(hide_password=False).split("?")[0]
    schemas = text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_%'")
    with create_engine(url).connect() as conn:  # another run's, left by a kill, may be here
        before = set(conn.execute(schemas).scalars())
    result = CliRunner().invoke(
        cli_module.cli,
        [
            *("bench", "--no-engine", "--cli-returns", "0", "--markdown"),
            *("--workers-pg", url, "--worker-returns", "4"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = {
        line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ")
    }
    labels = [
        "embedded SQLite, handlers inline",
        "PostgreSQL, 1 worker, returns applied meanwhile",
        "PostgreSQL, 1 worker, returns queued first",
        "PostgreSQL, 2 workers, returns queued first",
        "PostgreSQL, 4 workers, returns queued first",
    ]
    for label in labels:
        value, unit, _how = rows[f"{label}: throughput"]
        assert float(value) > 0
        assert unit == "returns/s"
        assert rows[f"{label}: latency p50 / p95"][1] == "ms"
    scaling = rows["2 workers / 1 worker, returns queued first"]
    assert scaling[2].startswith("target at least 1.5 x")
    share = rows["PostgreSQL 1 worker / embedded SQLite, returns applied meanwhile"]
    assert share[2].startswith("target at least 50 %")
    ceiling = rows["ceiling: bare SpiffWorkflow, in memory"]
    assert float(ceiling[0].replace(",", "")) > 0
    assert ceiling[1] == "instances/s"
    with create_engine(url).connect() as conn:  # every schema this run made is gone
        assert set(conn.execute(schemas).scalars()) == before
