"""Roles: lanes and escalations must name a role the procedure's roles.toml declares."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import BPMN, FIXTURES

from engine import Engine, InputError, ProcessValidationError, Registry
from engine.persistence import RoleSetRecord
from engine.roles import parse_roles

ROLES = FIXTURES / "roles" / "roles.toml"


def folder(tmp_path: Path, roles: str | None, *diagrams: str) -> Path:
    where = tmp_path / "procedure"
    where.mkdir(exist_ok=True)
    for name in diagrams:
        shutil.copy(BPMN / name, where / name)
    if roles is not None:
        (where / "roles.toml").write_text(roles, encoding="utf-8")
    return where


def problems_of(caught: pytest.ExceptionInfo[ProcessValidationError]) -> list[str]:
    return [p.message for p in caught.value.problems]


def test_a_roles_file_declares_roles_and_their_supervisors() -> None:
    roles, problems = parse_roles(ROLES.read_text())
    assert problems == []
    assert roles is not None
    assert roles.names == ["clerk", "clerk_supervisor"]
    assert "clerk_supervisor" in roles
    assert "clark" not in roles
    assert roles.suggest("clark") == "clerk"

    named, _ = parse_roles('[desk]\ntitle = "Desk"\ndoes = "x"\nsupervisor = "head"\n')
    assert named is not None
    assert named.names == ["desk", "head"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[clerk\n", "not valid TOML"),
        ("x = " + "[" * 100_000 + "]" * 100_000, "not valid TOML: nested too deep to read"),
        ("", "declares no roles"),
        ('[Clerk]\ntitle = "C"\ndoes = "x"\n', "lower case with underscores"),
        ('[clerk]\ntitle = "C"\n', "'does' must be a non-empty text"),
        ('[clerk]\ntitle = "C"\ndoes = "x"\nboss = "y"\n', "unknown key 'boss'"),
        ('[clerk]\ntitle = "C"\ndoes = "x"\nsupervisor = "The Boss"\n', "is not a role name"),
        ('clerk = "x"\n', "expected a [clerk] table"),
    ],
)
def test_a_wrong_roles_file_says_what_is_wrong(text: str, expected: str) -> None:
    roles, problems = parse_roles(text)
    assert roles is None
    assert any(expected in p.message for p in problems), problems
    assert all(p.file == "roles.toml" for p in problems)


def test_a_lane_outside_the_declared_roles_is_refused(engine: Engine, tmp_path: Path) -> None:
    where = folder(tmp_path, '[clark]\ntitle = "C"\ndoes = "x"\n', "escalate_review.bpmn")
    with pytest.raises(ProcessValidationError) as caught:
        engine.deploy([where], actor="owner")
    messages = problems_of(caught)
    assert "lane 'clerk' names a role roles.toml does not declare (did you mean 'clark'?)" in (
        messages
    )
    assert any(
        "escalation of 'Escalated to the clerk supervisor' to 'clerk_supervisor'" in m
        for m in messages
    )
    [lane] = [p for p in caught.value.problems if p.message.startswith("lane 'clerk' ")]
    assert lane.file == "escalate_review.bpmn"
    assert lane.element is not None
    assert engine.processes() == []
    assert engine.roles() is None


def test_roles_are_deployed_once_and_then_check_later_deploys(
    engine: Engine, tmp_path: Path
) -> None:
    where = folder(tmp_path, ROLES.read_text(), "escalate_review.bpmn")
    [deployed] = engine.deploy([where], actor="owner")
    assert deployed.created
    roles = engine.roles()
    assert roles is not None
    assert roles.names == ["clerk", "clerk_supervisor"]
    engine.deploy([where], actor="owner")  # same roles: stored once
    with engine.db.read() as session:
        assert session.scalar(select(func.count()).select_from(RoleSetRecord)) == 1

    # A diagram deployed on its own is checked against the roles deployed before.
    with pytest.raises(ProcessValidationError) as caught:
        engine.deploy([BPMN / "review_call.bpmn"], actor="owner")
    assert any("lane 'system'" in m for m in problems_of(caught))
    with pytest.raises(ProcessValidationError):
        engine.validate([BPMN / "review_call.bpmn"])
    assert engine.validate([BPMN / "review_call.bpmn"], stored_roles=False)


def test_without_a_roles_file_lanes_are_free(engine: Engine) -> None:
    engine.deploy([BPMN / "review_call.bpmn"], actor="owner")
    assert engine.roles() is None


def test_validate_needs_no_database_and_creates_none(tmp_path: Path) -> None:
    where = folder(tmp_path, ROLES.read_text(), "escalate_review.bpmn")
    missing = tmp_path / "nothing-here.db"
    offline = Engine(f"sqlite:///{missing}", registry=Registry())
    [checked] = offline.validate([where])
    assert checked.process_id == "escalate_review"
    assert not missing.exists()


def test_two_roles_files_are_refused(engine: Engine, tmp_path: Path) -> None:
    where = folder(tmp_path, ROLES.read_text(), "escalate_review.bpmn")
    (where / "more").mkdir()
    (where / "more" / "roles.toml").write_text(ROLES.read_text())
    with pytest.raises(InputError, match="two roles files"):
        engine.deploy([where], actor="owner")


def test_the_procedure_declares_every_lane_it_uses(engine: Engine) -> None:
    from support import PROCESSES

    roles, problems = parse_roles((PROCESSES / "roles.toml").read_text())
    assert problems == []
    assert roles is not None
    assert {"customer_service", "finance", "expert", "manager"} <= {r.name for r in roles.roles}
