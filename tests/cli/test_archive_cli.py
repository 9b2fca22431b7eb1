"""`artreturns audit archive`: closed returns' events moved to an export, what `audit
verify` and `history` say of them afterwards, a dry run, and who may archive."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_cli import RETURN_REQUEST, Cli
from test_cli import _clean_environment as _clean_environment  # autouse: no ARTRETURNS_*

T1 = "2026-11-02T10:00:00Z"
T2 = "2026-11-03T10:00:00Z"
BEFORE = "2026-11-03T00:00Z"
LATER = "2026-11-04T00:00Z"


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """RMA-1 cancelled on the first day, RMA-2 still running, RMA-3 cancelled later."""
    cli = Cli(f"sqlite:///{tmp_path / 'archive.db'}")
    cli("init")
    cli("deploy", str(RETURN_REQUEST))
    for key in ("RMA-1", "RMA-2", "RMA-3"):
        cli("start", "return_request", "--key", key, "--data", '{"customer": "Ann"}', now=T1)
        cli("comment", key, "first look", now=T1)
    cli("cancel", "RMA-1", "--reason", "withdrawn", now=T1)
    cli("cancel", "RMA-3", "--reason", "withdrawn", now=T2)
    return cli


def _stored_events(cli: Cli, key: str) -> int:
    with sqlite3.connect(cli.db.removeprefix("sqlite:///")) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM event WHERE instance_id = "
            "(SELECT id FROM instance WHERE business_key = ?)",
            (key,),
        ).fetchall()
        return int(count)


def test_archive_then_verify_and_history(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "archive-1"
    done = run("audit", "archive", "--before", BEFORE, "-o", str(out), now=T2)
    assert "Archived 3 events of 1 instance(s) to" in done.stdout
    assert f"audit verify --export {out}" in done.stdout
    assert _stored_events(run, "RMA-1") == 0
    assert _stored_events(run, "RMA-2") == 2  # running: started and a comment, untouched
    verified = run("audit", "verify", "RMA-1").stdout
    assert f"RMA-1: archived to {out} (events 1-3, head " in verified
    assert "1 history intact." in verified
    every = run("audit", "verify", "--all").stdout
    assert "3 histories intact." in every
    assert every.count("archived to") == 1
    story = run("history", "RMA-1").stdout
    assert f"events 1-3 were archived to {out}" in story
    assert str(out / "events.jsonl") in story
    assert run.json("history", "RMA-1") == []  # the note goes to stderr
    offline = run("audit", "verify", "--export", str(out), db=None)
    assert "3 events of 1 instance(s) intact." in offline.stdout
    both = run("audit", "verify", "RMA-1", "--export", str(out))
    assert "1 history intact." in both.stdout
    logged = run.json("operations")
    assert [(o["operation"], o["outcome"], o["target"]) for o in logged][-1] == (
        "audit archive",
        "done",
        "archive-1",
    )
    assert "intact" in run("operations", "--verify").stdout


def test_a_forged_archive_head_is_caught(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "archive-1"
    run("audit", "archive", "--before", BEFORE, "-o", str(out), now=T2)
    with sqlite3.connect(run.db.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE archive SET head_hash = ?", ("f" * 64,))
    broken = run("audit", "verify", "--all", code=5)
    assert "BROKEN RMA-1 at event 3: the head recorded with its archive differs" in broken.stderr
    # A consistent forgery of both heads shows against the export.
    with sqlite3.connect(run.db.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE instance SET head_hash = ? WHERE business_key = 'RMA-1'", ("f" * 64,))
    assert "1 history intact." in run("audit", "verify", "RMA-1").stdout
    against = run("audit", "verify", "RMA-1", "--export", str(out), code=5)
    assert "does not hold the archived history" in against.stderr


def test_a_dry_run_lists_and_changes_nothing(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "archive-1"
    looked = run("audit", "archive", "--before", LATER, "-o", str(out), "--dry-run", now=LATER)
    lines = looked.stdout.splitlines()
    assert lines[0].split() == ["RMA-1", "cancelled", "2026-11-02", "10:00", "events", "1-3"]
    assert lines[-1] == f"Would archive 6 events of 2 instance(s) to {out}."
    assert not out.exists()
    assert _stored_events(run, "RMA-1") == 3
    as_json = run.json("audit", "archive", "--before", LATER, "-o", str(out), "--dry-run")
    assert as_json["dry_run"] is True
    assert [(i["instance"], i["first_seq"], i["last_seq"]) for i in as_json["instances"]] == [
        ("RMA-1", 1, 3),
        ("RMA-3", 1, 3),
    ]
    assert "audit archive" not in [o["operation"] for o in run.json("operations")]


def test_nothing_to_archive(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "archive-0"
    nothing = run("audit", "archive", "--before", "2026-11-01T00:00Z", "-o", str(out))
    assert "Nothing to archive" in nothing.stdout
    assert not out.exists()


def test_only_an_admin_archives(run: Cli, tmp_path: Path) -> None:
    run("users", "add", "ada", "--role", "admin", actor="ada")
    run("users", "add", "aud", "--role", "auditor", actor="ada")
    out = tmp_path / "archive-1"
    refused = run("audit", "archive", "--before", BEFORE, "-o", str(out), actor="aud", code=4)
    assert "aud is an auditor and may not archive histories" in refused.stderr
    assert not out.exists()
    run("audit", "archive", "--before", BEFORE, "-o", str(out), actor="ada", now=T2)
    assert "archived to" in run("audit", "verify", "RMA-1", actor="aud").stdout
    assert "were archived to" in run("history", "RMA-1", actor="aud").stdout
    denied = json.loads(run("operations", "--denied", "--json", actor="aud").stdout)
    assert [(o["operation"], o["actor"]) for o in denied] == [("audit archive", "aud")]
