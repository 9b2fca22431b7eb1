"""`audit archive` on SQLite and PostgreSQL: closed instances' events move to an export,
running ones stay, the chain heads stay, verification still holds, and any failure
before the commit deletes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from support import T0, clock_of, fixture

from engine import Engine, EngineError, HistoryBrokenError, PermissionDeniedError
from engine.audit import verify_export
from engine.persistence import ArchiveRecord, EventRecord, InstanceRecord

BEFORE = T0 + timedelta(hours=12)


@pytest.fixture
def closed(engine: Engine) -> Engine:
    """OLD-1 completed and OLD-2 cancelled on day one; NEW-1 completed on day two;
    RUN-1 running since day one."""
    engine.deploy(fixture("review_call.bpmn"), actor="owner")
    for key in ("OLD-1", "OLD-2", "RUN-1"):
        engine.start("review_call", {"amount": 3}, business_key=key, actor="ann")
        engine.comment(key, "a look", actor="ann")
    engine.complete("OLD-1:review", {}, actor="ann")
    engine.cancel("OLD-2", actor="ann", reason="withdrawn")
    clock_of(engine).set(T0 + timedelta(days=1))
    engine.start("review_call", {"amount": 3}, business_key="NEW-1", actor="ann")
    engine.complete("NEW-1:review", {}, actor="ann")
    return engine


def _events(engine: Engine, key: str) -> int:
    with engine.db.read() as session:
        query = (
            select(func.count())
            .select_from(EventRecord)
            .join(InstanceRecord, InstanceRecord.id == EventRecord.instance_id)
            .where(InstanceRecord.business_key == key)
        )
        return int(session.execute(query).scalar_one())


def _heads(engine: Engine) -> dict[str | None, tuple[int, str]]:
    with engine.db.read() as session:
        rows = session.execute(
            select(
                InstanceRecord.business_key, InstanceRecord.event_count, InstanceRecord.head_hash
            )
        ).all()
        return {key: (count, head) for key, count, head in rows}


def _archive_rows(engine: Engine) -> int:
    with engine.db.read() as session:
        return int(session.execute(select(func.count()).select_from(ArchiveRecord)).scalar_one())


def _logged(engine: Engine) -> list[tuple[str, str]]:
    return [(o.operation, o.outcome) for o in engine.operations() if o.operation == "audit archive"]


def test_closed_instances_move_to_an_export_and_verification_holds(
    closed: Engine, tmp_path: Path
) -> None:
    engine = closed
    before = {key: _events(engine, key) for key in ("OLD-1", "OLD-2", "NEW-1", "RUN-1")}
    heads = _heads(engine)
    folder = tmp_path / "archive"

    result = engine.audit_archive(folder, before=BEFORE, actor="ada")

    assert [(i.instance, i.status, i.first_seq, i.last_seq) for i in result.instances] == [
        ("OLD-1", "completed", 1, before["OLD-1"]),
        ("OLD-2", "cancelled", 1, before["OLD-2"]),
    ]
    assert result.events == before["OLD-1"] + before["OLD-2"]
    assert {key: _events(engine, key) for key in before} == {
        **before,
        "OLD-1": 0,
        "OLD-2": 0,
    }
    assert _heads(engine) == heads  # every chain head as it was
    assert engine.history("OLD-1") == []
    assert [(e.seq, e.kind) for e in engine.history("RUN-1")] == [(1, "started"), (2, "comment")]
    # Verification still holds, and names where the events went.
    assert engine.verify("OLD-1") is None
    assert [(label, b) for label, b in engine.verify_all()] == [
        ("OLD-1", None),
        ("OLD-2", None),
        ("RUN-1", None),
        ("NEW-1", None),
    ]
    [kept] = engine.archives("OLD-1")
    assert (kept.folder, kept.through_seq, kept.head_hash) == (
        str(folder),
        before["OLD-1"],
        heads["OLD-1"][1],
    )
    assert kept.events_sha256 == result.events_sha256
    assert [a.instance for a in engine.archives()] == ["OLD-1", "OLD-2"]
    assert engine.archives("RUN-1") == []
    # The export checks offline and ends at the heads the database keeps.
    manifest, breaks = verify_export(folder)
    assert breaks == []
    assert manifest["events_sha256"] == result.events_sha256
    assert [(i["business_key"], i["first_seq"], i["anchor"]) for i in manifest["instances"]] == [
        ("OLD-1", 1, "0" * 64),
        ("OLD-2", 1, "0" * 64),
    ]
    assert [i["last_hash"] for i in manifest["instances"]] == [
        heads["OLD-1"][1],
        heads["OLD-2"][1],
    ]
    # Logged outside any instance, and the log's chain holds.
    assert _logged(engine) == [("audit archive", "done")]
    assert engine.verify_operations() is None
    # Nothing left to take: a second run writes nothing.
    again = engine.audit_archive(tmp_path / "again", before=BEFORE, actor="ada")
    assert again.instances == []
    assert not (tmp_path / "again").exists()


def test_the_archive_is_written_as_audit_export_writes(closed: Engine, tmp_path: Path) -> None:
    closed.audit_export(tmp_path / "export")
    closed.audit_archive(tmp_path / "archive", before=BEFORE, actor="ada")
    exported = (tmp_path / "export" / "events.jsonl").read_text().splitlines()
    archived = (tmp_path / "archive" / "events.jsonl").read_text().splitlines()
    keys = {json.loads(line)["business_key"] for line in archived}
    assert keys == {"OLD-1", "OLD-2"}
    assert archived == [line for line in exported if json.loads(line)["business_key"] in keys]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("UPDATE archive SET head_hash = '{forged}' {old_1}", "the head recorded with its archive"),
        ("UPDATE archive SET through_seq = through_seq - 1 {old_1}", "the database hold"),
        (
            "UPDATE instance SET head_hash = '{forged}' WHERE business_key = 'OLD-1'",
            "differs from the instance's chain head",
        ),
    ],
)
def test_a_changed_archive_or_head_breaks_verification(
    closed: Engine, tmp_path: Path, tamper: str, reason: str
) -> None:
    closed.audit_archive(tmp_path / "archive", before=BEFORE, actor="ada")
    with closed.db.engine.begin() as conn:
        old_1 = "WHERE instance_id = (SELECT id FROM instance WHERE business_key = 'OLD-1')"
        conn.execute(text(tamper.format(forged="f" * 64, old_1=old_1)))
    broken = closed.verify("OLD-1")
    assert broken is not None
    assert reason in broken.reason
    assert closed.verify("OLD-2") is None


def test_an_event_left_behind_breaks_verification(closed: Engine, tmp_path: Path) -> None:
    with closed.db.engine.begin() as conn:
        kept = conn.execute(
            text(
                "SELECT * FROM event WHERE seq = 1 AND instance_id = "
                "(SELECT id FROM instance WHERE business_key = 'OLD-1')"
            )
        )
        first = kept.mappings().one()
    closed.audit_archive(tmp_path / "archive", before=BEFORE, actor="ada")
    with closed.db.engine.begin() as conn:  # put the archived first event back
        values = {k: v for k, v in first.items() if k != "id"}
        columns = ", ".join(values)
        conn.execute(
            text(f"INSERT INTO event ({columns}) VALUES ({', '.join(':' + c for c in values)})"),
            values,
        )
    broken = closed.verify("OLD-1")
    assert broken is not None
    assert broken.seq == 1
    assert broken.reason.endswith("yet it is in the database")


def _fail_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(folder: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("engine.archive.make_durable", fail)


def _change_the_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def change(folder: Path) -> None:
        events = folder / "events.jsonl"
        events.write_text(events.read_text().replace('"ann"', '"mallory"', 1))

    monkeypatch.setattr("engine.archive.make_durable", change)


def _fail_committing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the connection dropped")

    monkeypatch.setattr(Engine, "log_operation", fail)


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (_fail_writing, EngineError),
        (_change_the_export, HistoryBrokenError),
        (_fail_committing, RuntimeError),
    ],
)
def test_a_failure_deletes_nothing(
    closed: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: object,
    error: type[Exception],
) -> None:
    counts = {key: _events(closed, key) for key in ("OLD-1", "OLD-2")}
    assert callable(failure)
    failure(monkeypatch)
    with pytest.raises(error) as caught:
        closed.audit_archive(tmp_path / "archive", before=BEFORE, actor="ada")
    if isinstance(caught.value, EngineError):
        assert "nothing" in f"{caught.value} {caught.value.hint}".lower()
    monkeypatch.undo()
    assert {key: _events(closed, key) for key in counts} == counts
    assert _archive_rows(closed) == 0
    assert closed.archives() == []
    assert _logged(closed) == []
    assert closed.verify("OLD-1") is None


def test_a_broken_history_is_not_archived(closed: Engine, tmp_path: Path) -> None:
    with closed.db.engine.begin() as conn:
        conn.execute(text("UPDATE event SET actor = 'mallory' WHERE seq = 2"))
    with pytest.raises(HistoryBrokenError, match="nothing was archived"):
        closed.audit_archive(tmp_path / "archive", before=BEFORE, actor="ada")
    assert _events(closed, "OLD-1") > 0
    assert _archive_rows(closed) == 0


def test_a_dry_run_changes_nothing(closed: Engine, tmp_path: Path) -> None:
    counts = {key: _events(closed, key) for key in ("OLD-1", "OLD-2")}
    folder = tmp_path / "archive"
    result = closed.audit_archive(folder, before=BEFORE, dry_run=True, actor="ada")
    assert [i.instance for i in result.instances] == ["OLD-1", "OLD-2"]
    assert result.events == sum(counts.values())
    assert result.events_sha256 is None
    assert not folder.exists()
    assert {key: _events(closed, key) for key in counts} == counts
    assert _archive_rows(closed) == 0
    assert _logged(closed) == []


def test_only_an_admin_archives_and_an_auditor_reads(closed: Engine, tmp_path: Path) -> None:
    closed.add_user("ada", ["admin"], actor="ada")
    closed.add_user("aud", ["auditor"], actor="ada")
    folder = tmp_path / "archive"
    with pytest.raises(PermissionDeniedError, match="may not archive histories"):
        closed.audit_archive(folder, before=BEFORE, actor="aud")
    assert _logged(closed) == [("audit archive", "denied")]
    assert not folder.exists()
    looked = closed.audit_archive(folder, before=BEFORE, dry_run=True, actor="aud")
    assert len(looked.instances) == 2
    closed.audit_archive(folder, before=BEFORE, actor="ada")
    assert closed.verify("OLD-1", actor="aud") is None
    assert [a.instance for a in closed.archives(actor="aud")] == ["OLD-1", "OLD-2"]
