"""The statements every command makes, as plain SQL handed to the driver.

Each command of the engine writes the instance row, appends events, and upserts task
rows. Building and binding these through SQLAlchemy's statement layer costs more than
the database work itself, so they are rendered once per dialect (SQLite and
PostgreSQL share the SQL; only the parameter markers differ) and handed to the
driver's own cursor inside the command's transaction; a driver error is raised as the
SQLAlchemy error the rest of the engine already translates. Times are
bound exactly as the column type binds them: SQLite stores the text form SQLAlchemy
reads back, PostgreSQL takes aware datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from engine.errors import ConfigurationError
from engine.reading import sqlite_time

_MARKER = re.compile(r":([a-z_][a-z0-9_]*)\b")


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
    ) -> Done:
        """Run on the driver's own connection, inside the transaction `conn` began.

        A driver error is raised as the SQLAlchemy error `exec_driver_sql` would raise
        (IntegrityError, OperationalError, ...), so callers translate it as any other."""
        dialect = conn.dialect
        text = self._text(dialect.name)
        watched = conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute
        if watched or conn._echo:
            # Something watches the statements (echo, tracing, a test): let it see them.
            return self._observed(conn, text, values)
        driver = conn.connection.driver_connection
        assert driver is not None, "a connection inside a transaction has its driver"
        cursor = driver.cursor()
        params: dict[str, Any] | list[dict[str, Any]]
        try:
            if isinstance(values, Mapping):
                params = self._bind(dialect.name, values)
                cursor.execute(text, params)
            else:
                params = [self._bind(dialect.name, v) for v in values]
                cursor.executemany(text, params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return Done(cursor.rowcount, rows)
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                text, params, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()

    def _observed(
        self,
        conn: Connection,
        text: str,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    ) -> Done:
        name = conn.dialect.name
        if isinstance(values, Mapping):
            result = conn.exec_driver_sql(text, self._bind(name, values))
        else:
            result = conn.exec_driver_sql(text, [self._bind(name, v) for v in values])
        rows = [tuple(r) for r in result.fetchall()] if result.returns_rows else []
        return Done(result.rowcount, rows)


class Done:
    """What a statement gave back: the rows it changed, the rows it returned."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rowcount: int, rows: Sequence[Sequence[Any]]) -> None:
        self.rowcount = rowcount
        self.rows = rows

    def first(self) -> Sequence[Any] | None:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise ValueError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]


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
