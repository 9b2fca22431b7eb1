"""Reads for the commands people run most, in plain SQL through the database driver.

The worklist is what operators ask for most, and a command that only lists tasks should
not pay for importing SQLAlchemy (a few hundred milliseconds, more than the query). So
the query lives here once, as SQL text over a DB-API connection: the engine runs it on
the connection of its own transaction (`Engine.worklist`), and `artreturns tasks` on a
connection it opens with the driver alone (`open_reader`). Nothing here imports
SQLAlchemy, SpiffWorkflow or the ORM records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from engine.canonical import load_data
from engine.errors import ConfigurationError, InputError, InstanceNotFoundError
from engine.permissions import (
    Principal,
    Refusal,
    Supervisors,
    may_list_everyone,
    may_list_role,
    may_read,
)
from engine.views import SHORT_ID, InstanceView, TaskView, WorkItem

SORTS = ("due", "age")
#: The states of a task that is not over yet.
OPEN_STATES = ("READY", "QUEUED", "FAILED", "WAITING")
#: The task table's columns a TaskView shows (all its fields but the derived ones).
_TASK_COLUMNS = tuple(
    f.name for f in fields(TaskView) if f.name not in ("short_id", "business_key")
)
_TIMES = frozenset({"due_at", "created_at", "ended_at", "claimed_at"})


@dataclass
class Reader:
    """A DB-API connection and its dialect ("sqlite" or "postgresql"); SQL is written
    with `?` markers and rendered for the dialect."""

    connection: Any
    dialect: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        text = " ".join(sql.split())
        if self.dialect == "postgresql":
            text = text.replace("?", "%s")
        bound = [self.bind(p) for p in params]
        cursor = self.connection.cursor()
        try:
            cursor.execute(text, bound)
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    @classmethod
    def on(cls, conn: Any) -> Reader:
        """The driver's own connection under a SQLAlchemy one, inside its transaction."""
        return cls(conn.connection.driver_connection, conn.dialect.name)

    def bind(self, value: Any) -> Any:
        """A time as its column type stores it: text on SQLite, aware on PostgreSQL."""
        if isinstance(value, datetime) and self.dialect == "sqlite":
            return sqlite_time(value)
        return value

    def time(self, value: Any) -> datetime | None:
        return read_time(value)


def sqlite_time(value: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite DateTime type stores it (so that comparisons
    in SQL and the values read back agree with rows written through SQLAlchemy)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use UTC-aware times")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def read_time(value: Any) -> datetime | None:
    """A time as read back: UTC-aware, whatever the driver gave (text from SQLite, an
    aware datetime from PostgreSQL)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Packages publish what worklists show of an instance under this entry-point group: a
#: mapping of field names to dotted data paths, such as {"customer": "customer.name"}.
SUMMARY_GROUP = "artreturns.summary"


def summary_paths(group: str = SUMMARY_GROUP) -> dict[str, str]:
    """The summary fields the installed packages publish, merged in entry-point order."""
    fields: dict[str, str] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            published = ep.load()
            fields.update({str(k): str(v) for k, v in dict(published).items()})
        except Exception as exc:
            raise ConfigurationError(
                f"summary fields '{ep.name}' ({ep.value}) failed to load: {exc}",
                "Fix or uninstall the package that provides them.",
            ) from exc
    return fields


# -- opening a database without SQLAlchemy -------------------------------------------


def driver_target(url: str) -> tuple[str, str] | None:
    """("sqlite", path) or ("postgresql", conninfo) for a URL the drivers open as they
    are; None for anything else (another driver, options in the URL, a SQLite file
    that does not exist yet), which the caller leaves to SQLAlchemy and its messages."""
    text = url.strip()
    if "://" not in text:
        text = f"sqlite:///{text}"
    scheme, _, rest = text.partition("://")
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if "?" in rest or not rest.startswith("/") or rest in ("/", "/:memory:"):
            return None
        path = Path(unquote(rest[1:]))
        return ("sqlite", str(path)) if path.is_file() else None
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        # libpq reads the same URL, its query options (sslmode, options, ...) included.
        return ("postgresql", f"postgresql://{rest}")
    return None


@contextmanager
def open_reader(url: str) -> Iterator[Reader | None]:
    """A read-only connection opened with the driver alone, or None when the URL is one
    to leave to SQLAlchemy (see `driver_target`)."""
    target = driver_target(url)
    if target is None:
        yield None
        return
    dialect, where = target
    if dialect == "sqlite":
        connection: Any = sqlite3.connect(
            f"file:{Path(where).as_posix()}?mode=ro", uri=True, isolation_level=None
        )
        connection.execute("PRAGMA busy_timeout = 10000")
        connection.execute("BEGIN")  # one snapshot for every read of the command
    else:
        import psycopg

        try:
            connection = psycopg.connect(where)
        except psycopg.Error:
            yield None  # let SQLAlchemy open it and say what is wrong
            return
        connection.read_only = True
    try:
        yield Reader(connection, dialect)
    except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
        if "no such table" in str(exc) or "no such column" in str(exc):
            raise ConfigurationError(
                f"the database {url} has no artreturns schema, or an older one",
                "Run `artreturns init` to create or upgrade it.",
            ) from exc
        raise
    finally:
        connection.close()


# -- what the rules need ---------------------------------------------------------------


def principal(reader: Reader, name: str) -> Principal:
    """As `users.principal`, on a driver connection: one read."""
    found = reader.rows(
        "SELECT name, roles, active FROM user_account "
        "ORDER BY CASE WHEN name = ? THEN 0 ELSE 1 END LIMIT 1",
        [name],
    )
    if found and found[0][0] == name:
        roles = found[0][1]
        roles = json.loads(roles) if isinstance(roles, str) else roles
        return Principal(
            name=name,
            roles=frozenset(str(r) for r in roles),
            enforced=True,
            known=True,
            active=bool(found[0][2]),
        )
    return Principal(name=name, enforced=bool(found))


def supervisors(reader: Reader) -> Supervisors:
    """Who supervises whom, from the roles file deployed last."""
    found = reader.rows("SELECT roles FROM role_set ORDER BY id DESC LIMIT 1")
    if not found:
        return Supervisors()
    roles = found[0][0]
    roles = json.loads(roles) if isinstance(roles, str) else roles
    return Supervisors({str(r["name"]): str(r["supervisor"]) for r in roles or []})


def instance_id(reader: Reader, ref: str) -> int:
    """An instance by business key, or by number (`12` or `#12`)."""
    text = ref.strip()
    found = reader.rows("SELECT id FROM instance WHERE business_key = ?", [text])
    if not found:
        number = text[1:] if text.startswith("#") else text
        if number.isdigit():
            found = reader.rows("SELECT id FROM instance WHERE id = ?", [int(number)])
    if not found:
        raise InstanceNotFoundError(
            f"no instance '{ref}'",
            "Give a business key or an instance number; `artreturns tasks --all` lists "
            "instances with open work.",
        )
    return int(found[0][0])


# -- the worklist ------------------------------------------------------------------------


def worklist(
    reader: Reader,
    *,
    principal: Principal | None,
    role: str | None,
    everyone: bool,
    instance: int | None,
    overdue: bool,
    kinds: Sequence[str],
    states: Sequence[str],
    sort: str,
    now: datetime,
) -> list[WorkItem]:
    """Open tasks with each instance's business key and summary, overdue first, then by
    due time (`sort="due"`) or age, then by creation and id; see `Engine.worklist` for
    whose tasks each choice gives. The caller has decided that the principal may ask."""
    if sort not in SORTS:
        raise InputError(f"cannot sort by {sort!r}", "Sort by due or age.")
    where = [f"t.state IN ({_marks(states)})", f"t.kind IN ({_marks(kinds)})"]
    params: list[Any] = [*states, *kinds]
    if role is not None:
        # A role's worklist holds its own tasks and those escalated to it.
        where.append("(t.role = ? OR t.escalated_to = ?)")
        params += [role, role]
    if instance is not None:
        where.append("t.instance_id = ?")
        params.append(instance)
    mine = (
        principal is not None
        and principal.enforced
        and role is None
        and not everyone
        and instance is None
    )
    if mine:
        assert principal is not None
        held = sorted(principal.roles)
        # A claim holds only while its claimer is an active user (`claim_holds`): a
        # disabled one's, or one made under a name that never became a user (before the
        # first user existed), leaves the task free for its role.
        free = (
            "(t.claimed_by IS NULL OR t.claimed_by = ? OR t.claimed_by NOT IN "
            "(SELECT name FROM user_account WHERE active = ?))"
        )
        either = ["t.claimed_by = ?"]
        either_params: list[Any] = [principal.name]
        if held:
            either += [
                f"(t.role IN ({_marks(held)}) AND {free})",
                f"t.escalated_to IN ({_marks(held)})",
            ]
            either_params += [*held, principal.name, True, *held]
        if principal.work_roles:
            either.append(f"(t.role IS NULL AND {free})")
            either_params += [principal.name, True]
        where.append("(" + " OR ".join(either) + ")")
        params += either_params
    late = "(t.due_at IS NOT NULL AND t.due_at <= ?)"
    if overdue:
        where.append(late)
        params.append(now)
    order = [f"CASE WHEN {late} THEN 0 ELSE 1 END"]
    params.append(now)
    if sort == "due":
        order += ["CASE WHEN t.due_at IS NULL THEN 1 ELSE 0 END", "t.due_at"]
    order += ["t.created_at", "t.id"]
    columns = ", ".join(f"t.{c}" for c in _TASK_COLUMNS)
    sql = (
        f"SELECT {columns}, i.business_key, i.summary "  # noqa: S608 - constant names
        "FROM task t JOIN instance i ON i.id = t.instance_id "
        f"WHERE {' AND '.join(where)} ORDER BY {', '.join(order)}"
    )
    items = []
    for row in reader.rows(sql, params):
        task = _task_view(reader, row, row[-2])
        summary = row[-1]
        late_now = task.due_at is not None and task.due_at <= now
        opened = task.created_at or now
        age = max(0, int((now - opened).total_seconds()))
        items.append(WorkItem(task, json.loads(summary) if summary else {}, late_now, age))
    return items


def worklist_refusal(
    principal: Principal, supervisors: Supervisors, role: str | None, everyone: bool
) -> Refusal | None:
    """Whether the principal may see the worklist asked for."""
    if role is not None:
        return may_list_role(principal, role, supervisors)
    if everyone:
        return may_list_everyone(principal, supervisors)
    return may_read(principal)


def worklist_scope(role: str | None, everyone: bool, instance: str | None) -> str | None:
    """What a refused worklist asked for, as the operation log names it."""
    return f"role {role}" if role else "everyone" if everyone else instance


def _task_view(reader: Reader, row: Sequence[Any], business_key: str | None) -> TaskView:
    """A TaskView of a row that begins with the task table's `_TASK_COLUMNS`."""
    values = dict(zip(_TASK_COLUMNS, row, strict=False))
    for name in _TIMES:
        values[name] = reader.time(values[name])
    return TaskView(short_id=values["id"][:SHORT_ID], business_key=business_key, **values)


# -- one instance --------------------------------------------------------------------------

#: The instance table's columns an InstanceView shows, its stored data among them.
_INSTANCE_COLUMNS = tuple(
    f.name for f in fields(InstanceView) if f.name not in ("open_tasks", "done_tasks")
)
_INSTANCE_TIMES = ("started_at", "updated_at", "ended_at", "next_timer_at")


def instance_view(reader: Reader, number: int) -> InstanceView | None:
    """An instance with its data and all its tasks, open and done, as `Engine.show`
    gives it; None when its data is not stored beside its state (it was last saved
    before schema revision 0005, or holds a value JSON cannot keep exactly), and only
    restoring the state gives it."""
    found = reader.rows(
        f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM instance WHERE id = ?",  # noqa: S608
        [number],
    )
    if not found:
        raise InstanceNotFoundError(f"no instance #{number}")
    values = dict(zip(_INSTANCE_COLUMNS, found[0], strict=True))
    if values["data"] is None:
        return None
    for name in _INSTANCE_TIMES:
        values[name] = reader.time(values[name])
    rows = reader.rows(
        f"SELECT {', '.join(_TASK_COLUMNS)} FROM task "  # noqa: S608
        "WHERE instance_id = ? ORDER BY created_at, id",
        [number],
    )
    tasks = [_task_view(reader, row, values["business_key"]) for row in rows]
    return InstanceView.of(
        SimpleNamespace(**values),
        load_data(values["data"]),
        [t for t in tasks if t.state in OPEN_STATES],
        [t for t in tasks if t.state not in OPEN_STATES],
    )


def _marks(values: Sequence[Any]) -> str:
    if not values:
        raise ValueError("an IN list needs at least one value")
    return ", ".join("?" for _ in values)


__all__ = [
    "OPEN_STATES",
    "SORTS",
    "SUMMARY_GROUP",
    "Reader",
    "driver_target",
    "instance_id",
    "instance_view",
    "open_reader",
    "principal",
    "read_time",
    "sqlite_time",
    "summary_paths",
    "supervisors",
    "worklist",
    "worklist_refusal",
    "worklist_scope",
]
