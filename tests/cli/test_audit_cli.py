"""`artreturns audit`: chains verified one or all at once, exported with a manifest of
chain heads, and the export checked offline, every tampering caught."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_cli import ENV_VARS, RETURN_REQUEST, Cli

T1 = "2026-11-02T10:00:00Z"
T2 = "2026-11-03T10:00:00Z"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """Two instances with a few events each, on two days."""
    cli = Cli(f"sqlite:///{tmp_path / 'audit.db'}")
    cli("init")
    cli("deploy", str(RETURN_REQUEST))
    for key in ("RMA-1", "RMA-2"):
        cli("start", "return_request", "--key", key, "--data", '{"customer": "Ann"}', now=T1)
        cli("comment", key, "first look", now=T1)
        cli("comment", key, "second look", now=T2)
    return cli


def test_every_history_is_verified(run: Cli) -> None:
    assert "2 histories intact." in run("audit", "verify", "--all").stdout
    assert "1 history intact." in run("audit", "verify", "RMA-1").stdout


def test_a_changed_event_is_reported_with_its_instance(run: Cli) -> None:
    with sqlite3.connect(run.db.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "UPDATE event SET actor = 'mallory' WHERE seq = 2 AND instance_id = "
            "(SELECT id FROM instance WHERE business_key = 'RMA-2')"
        )
    broken = run("audit", "verify", "--all", code=5)
    assert "BROKEN RMA-2 at event 2" in broken.stderr
    assert "1 of 2 histories are broken" in broken.stderr


def test_an_export_verifies_offline(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = run("audit", "export", "-o", str(out))
    assert "Exported 6 events of 2 instance(s)" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["business_key"] for i in manifest["instances"]] == ["RMA-1", "RMA-2"]
    checked = run("audit", "verify", "--export", str(out), db=None)  # no database at all
    assert "6 events of 2 instance(s) intact." in checked.stdout


def test_a_window_exports_whole_runs_of_each_chain(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "day2"
    run("audit", "export", "--since", "2026-11-03T00:00Z", "-o", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    [first, _second] = manifest["instances"]
    assert (first["first_seq"], first["last_seq"], first["head_seq"]) == (3, 3, 3)
    assert first["anchor"] != "0" * 64  # it follows the event before the window
    assert "intact" in run("audit", "verify", "--export", str(out), db=None).stdout


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "manifest"])
def test_tampering_with_an_export_is_caught(run: Cli, tmp_path: Path, tamper: str) -> None:
    out = tmp_path / "export"
    run("audit", "export", "-o", str(out))
    events = out / "events.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if tamper == "edit":
        line = json.loads(lines[1])
        line["actor"] = "mallory"
        lines[1] = json.dumps(line, ensure_ascii=False) + "\n"
    elif tamper == "delete":
        del lines[1]
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    if tamper == "manifest":
        manifest["instances"][0]["last_hash"] = "f" * 64
        manifest_path.write_text(json.dumps(manifest))
    else:
        events.write_text("".join(lines))
    broken = run("audit", "verify", "--export", str(out), db=None, code=5)
    assert "BROKEN" in broken.stderr
    if tamper != "manifest":  # the file no longer matches its digest, and the chain shows where
        assert "does not match the digest" in broken.stderr
        assert "BROKEN RMA-1 at event" in broken.stderr
    else:
        assert "the last event's hash differs from the manifest" in broken.stderr


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (b"not json at all", "line 2 is not an event: Expecting value"),
        (b"[1, 2]", "line 2 is not an event: it is not a JSON object"),
        (b'{"instance": "x"}', "line 2 is not an event: it has no seq"),
        (b"\xff\xfe", "line 2 is not an event: it is not UTF-8"),
        (b"[" * 100_000, "line 2 is not an event: maximum recursion depth"),
        (b"9" * 5000, "line 2 is not an event: Exceeds the limit"),
        ("seq", "line 2 is not an event: invalid literal for int()"),
        ("at", "line 2 is not an event: Invalid isoformat string"),
        ("data", None),  # any JSON value is data: the chain says it was changed
    ],
)
def test_a_damaged_line_is_a_break_not_a_crash(
    run: Cli, tmp_path: Path, line: bytes | str, said: str | None
) -> None:
    """Whatever a line holds, verifying says where the export breaks, and goes on to
    check every instance."""
    out = tmp_path / "export"
    run("audit", "export", "-o", str(out))
    events = out / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    if isinstance(line, bytes):
        lines[1] = line + b"\n"
    else:
        event = json.loads(lines[1])
        event[line] = {"seq": "two", "at": "yesterday", "data": [None]}[line]
        lines[1] = json.dumps(event).encode() + b"\n"
    events.write_bytes(b"".join(lines))
    broken = run("audit", "verify", "--export", str(out), db=None, code=5)
    assert "BROKEN the export: events.jsonl does not match the digest" in broken.stderr
    if said is not None:
        assert f"BROKEN the export: events.jsonl {said}" in broken.stderr
        assert "BROKEN RMA-1 at event 2: event 2 is missing (found 3)" in broken.stderr
    else:
        assert "BROKEN RMA-1 at event 2: its content does not match its hash" in broken.stderr
    assert "RMA-2" not in broken.stderr  # the other instance holds


@pytest.mark.parametrize(
    ("manifest", "said"),
    [
        ("{not json", "it is not JSON"),
        ("[]", "it is not a JSON object"),
        ({"events": 6}, "it has no events_sha256 or events count"),
        ({"instances": None}, "it has no list of instances"),
        ({"instances": [{}]}, "instance 1 of its list lacks one of uid, anchor, last_hash,"),
        ({"instances": [{"uid": 1}]}, "instance 1 of its list lacks one of uid,"),
    ],
)
def test_a_damaged_manifest_is_said_so(
    run: Cli, tmp_path: Path, manifest: str | dict[str, object], said: str
) -> None:
    out = tmp_path / "export"
    run("audit", "export", "-o", str(out))
    path = out / "manifest.json"
    if isinstance(manifest, dict):
        written = json.loads(path.read_text())
        written.update(manifest)
        if "events" in manifest:
            del written["events_sha256"]
        manifest = json.dumps(written)
    path.write_text(manifest)
    broken = run("audit", "verify", "--export", str(out), db=None, code=5)
    assert f"does not hold: manifest.json is damaged: {said}" in broken.stderr
    elsewhere = {"format": "another/1"}
    path.write_text(json.dumps(elsewhere))
    refused = run("audit", "verify", "--export", str(out), db=None, code=2)
    assert "manifest.json is not an artreturns audit export" in refused.stderr


def test_an_export_goes_into_a_new_folder(run: Cli, tmp_path: Path) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "something").write_text("x")
    refused = run("audit", "export", "-o", str(out), code=2)
    assert "is not empty" in refused.stderr


def test_history_across_instances_by_person_and_period(run: Cli) -> None:
    run("comment", "RMA-2", "a word from ann", actor="ann", now=T2)
    by_ann = run.json("history", "--actor", "ann")
    assert [(e["rma"], e["kind"], e["data"]["text"]) for e in by_ann] == [
        ("RMA-2", "comment", "a word from ann")
    ]
    day2 = run.json("history", "--since", "2026-11-03T00:00Z")
    assert [(e["rma"], e["seq"]) for e in day2] == [("RMA-1", 3), ("RMA-2", 3), ("RMA-2", 4)]
    assert run.json("history", "--until", "2026-11-01T00:00Z") == []
    rows = run("history", "--actor", "tester", "--csv").stdout.splitlines()
    assert rows[0] == "rma,seq,at,actor,kind,step,task,what,hash"
    assert len(rows) == 1 + 6  # started and two comments, on each instance
    assert rows[1].startswith("RMA-1,1,2026-11-02T10:00:00+00:00,tester,started,")
    text = run("history", "--actor", "ann").stdout
    assert "RMA-2" in text
    assert "a word from ann" in text


def test_history_asks_for_an_instance_or_a_selection(run: Cli) -> None:
    assert "give INSTANCE" in run("history", code=2).stderr
    mixed = run("history", "RMA-1", "--actor", "ann", code=2)
    assert "across instances" in mixed.stderr
    assert "--json or --csv" in run("history", "RMA-1", "--json", "--csv", code=2).stderr
