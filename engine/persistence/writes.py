"""The four writes every command makes, as plain SQL handed to the driver.

Each command of the engine writes the instance row, appends events, and upserts task
rows. Building and binding these through SQLAlchemy's statement layer costs more than
the database work itself, so they are rendered once per dialect (SQLite and
PostgreSQL share the SQL; only the parameter markers differ) and run with
`exec_driver_sql`, which still translates driver errors into SQLAlchemy's. Times are
bound exactly as the column type binds them: SQLite stores the text form SQLAlchemy
reads back, PostgreSQL takes aware datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult

from engine.errors import ConfigurationError

_MARKER = re.compile(r":([a-z_]+)\b")


class Write:
    """One SQL statement with named parameters (`:name`) and the names that are times."""

    def __init__(self, sql: str, times: Sequence[str] = ()) -> None:
        self.sql = " ".join(sql.split())
        self.times = tuple(times)
        self._rendered: dict[str, str] = {}

    def _text(self, dialect: str) -> str:
        text = self._rendered.get(dialect)
        if text is None:
            if dialect == "sqlite":
                text = self.sql  # sqlite3 takes :name itself
            elif dialect == "postgresql":
                text = _MARKER.sub(r"%(\1)s", self.sql.replace("%", "%%"))
            else:
                raise ConfigurationError(
                    f"the {dialect} database is not supported", "Use SQLite or PostgreSQL."
                )
            self._rendered[dialect] = text
        return text

    def _bind(self, dialect: str, values: Mapping[str, Any]) -> dict[str, Any]:
        bound = dict(values)
        if dialect == "sqlite":
            for name in self.times:
                value = bound.get(name)
                if value is not None:
                    bound[name] = sqlite_time(value)
        return bound

    def run(
        self, conn: Connection, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> CursorResult[Any]:
        dialect = conn.dialect.name
        text = self._text(dialect)
        if isinstance(values, Mapping):
            return conn.exec_driver_sql(text, self._bind(dialect, values))
        return conn.exec_driver_sql(text, [self._bind(dialect, v) for v in values])


def _names(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def _markers(columns: Sequence[str]) -> str:
    return ", ".join(f":{c}" for c in columns)


# The SQL below is assembled from the engine's own constant table and column names,
# never from input; values always travel as parameters.


def insert(
    table: str, columns: Sequence[str], times: Sequence[str] = (), returning: str | None = None
) -> Write:
    tail = f" RETURNING {returning}" if returning else ""
    sql = f"INSERT INTO {table} ({_names(columns)}) VALUES ({_markers(columns)}){tail}"  # noqa: S608
    return Write(sql, times)


def upsert(
    table: str, columns: Sequence[str], key: str, changes: Sequence[str], times: Sequence[str] = ()
) -> Write:
    updates = ", ".join(f"{c} = excluded.{c}" for c in changes)
    sql = (
        f"INSERT INTO {table} ({_names(columns)}) VALUES ({_markers(columns)}) "  # noqa: S608
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    return Write(sql, times)


def update(
    table: str, columns: Sequence[str], where: Sequence[str], times: Sequence[str] = ()
) -> Write:
    """UPDATE table SET column = :column ... WHERE w = :b_w AND ..."""
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    condition = " AND ".join(f"{w} = :b_{w}" for w in where)
    return Write(f"UPDATE {table} SET {assignments} WHERE {condition}", times)  # noqa: S608


def sqlite_time(value: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite DateTime type stores it (so that comparisons
    in SQL and the values read back agree with rows written through SQLAlchemy)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use UTC-aware times")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
