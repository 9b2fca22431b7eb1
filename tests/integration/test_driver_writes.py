"""The engine's hot statements go straight to the driver unless something watches the
statements; both ways must give the same rows and raise the same errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from engine.api import Engine
from engine.persistence.writes import Done, Write, insert

_INSERT = insert(
    "user_account", ["name", "roles", "active", "created_at", "created_by"], times=["created_at"]
)
_READ = Write("SELECT name, active FROM user_account WHERE name = :b_name")
_DISABLE = Write("UPDATE user_account SET active = :active WHERE name = :b_name")


def _watch(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine.db.engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    return seen


def _exercise(engine: Engine, name: str) -> tuple[Any, Any, int, int]:
    now = engine.clock.now()
    row = {
        "name": name,
        "roles": '["admin"]',
        "active": True,
        "created_at": now,
        "created_by": "test",
    }
    with engine.db.engine.begin() as conn:
        _INSERT.run(conn, row)
        first = _READ.run(conn, {"b_name": name}).first()
        missing = _READ.run(conn, {"b_name": name + "-nobody"}).first()
        changed = _DISABLE.run(conn, {"active": False, "b_name": name}).rowcount
        many = _DISABLE.run(
            conn, [{"active": True, "b_name": name}, {"active": True, "b_name": "nobody"}]
        ).rowcount
    with pytest.raises(IntegrityError), engine.db.engine.begin() as conn:
        _INSERT.run(conn, row)  # the same primary key again
    return (first[0], bool(first[1])) if first else None, missing, changed, many


def test_driver_and_observed_paths_agree(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:  # unwatched: the driver's cursor, never SQLAlchemy
        patch.setattr(Write, "_observed", lambda *a: pytest.fail("took the observed path"))
        fast = _exercise(engine, "fast-path")
    seen = _watch(engine)
    observed = _exercise(engine, "observed-path")
    assert seen, "with a listener the statements go through SQLAlchemy"
    assert fast == (("fast-path", True), None, 1, 1)
    assert observed == (("observed-path", True), None, 1, 1)


def test_done_scalar_one() -> None:
    assert Done(1, [(7,)]).scalar_one() == 7
    with pytest.raises(ValueError, match="expected one row"):
        Done(0, []).scalar_one()
