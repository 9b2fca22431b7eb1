"""The people who may act, and the roles they hold, as the rules need them.

A user is a name and a set of roles; users are never deleted, only disabled, so that
every name in a history keeps meaning someone. The acting user of a command is looked
up here (two indexed reads at most); `permissions` decides what they may do.
"""

from __future__ import annotations

import json
import re
from typing import cast

from sqlalchemy import Connection, Table, bindparam, select

from engine.errors import InputError
from engine.permissions import Principal
from engine.persistence import UserRecord
from engine.persistence.writes import Write

USER = cast(Table, UserRecord.__table__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")

_ONE = select(USER.c.name, USER.c.roles, USER.c.active).where(USER.c.name == bindparam("b_name"))
_ANY = select(USER.c.name).limit(1)
# Read by every command: plain SQL handed to the driver (see `writes`), which costs a
# third of building and binding the same query through SQLAlchemy's statement layer.
_ME_OR_ANY = Write(
    "SELECT name, roles, active FROM user_account "
    "ORDER BY CASE WHEN name = :b_name THEN 0 ELSE 1 END LIMIT 1"
)


def check_name(name: str) -> str:
    text = name.strip()
    if not _NAME.match(text):
        raise InputError(
            f"'{name}' is not a user name",
            "Use letters, digits and . _ @ + - (no spaces), starting with a letter or "
            "digit, at most 100 characters: for example fin-fay.",
        )
    return text


def enforced(conn: Connection) -> bool:
    """Whether any user exists (before the first one, the engine runs single-user)."""
    return conn.execute(_ANY).first() is not None


def principal(conn: Connection, name: str) -> Principal:
    """The acting user as the rules see them; unknown names are principals too.

    One read: the user's own row if there is one, else any row (users exist, so rules
    are enforced), else none (a database without users runs single-user). A business
    has tens or hundreds of users, so the read is cheap however it is planned."""
    row = _ME_OR_ANY.run(conn, {"b_name": name}).first()
    if row is not None and row[0] == name:
        # The driver gives JSON as text on SQLite and as a list on PostgreSQL.
        roles = json.loads(row[1]) if isinstance(row[1], str) else row[1]
        return Principal(
            name=name,
            roles=frozenset(str(r) for r in roles),
            enforced=True,
            known=True,
            active=bool(row[2]),
        )
    return Principal(name=name, enforced=row is not None)


def claim_holds(conn: Connection, claimer: str | None) -> bool:
    """A claim holds unless users exist and the claimer is not an active one."""
    if claimer is None:
        return False
    row = conn.execute(_ONE, {"b_name": claimer}).first()
    if row is not None:
        return bool(row.active)
    return not enforced(conn)
