"""Copies of instances, written in bulk: what a history generator needs from the engine.

An instance that really ran (its instance row, task rows, events, and rows of other
tables that name it) is read once as a template: every text in it is split around what
each copy changes, the ids (UUIDs), the dates, SpiffWorkflow's `last_state_change`
stamps and tokens the caller names (its business key, an order number...). A copy is
the template's rows with those slots filled: its dates moved by whole days, its ids
its own, its events chained again with `engine.history.event_hash` (what
`history.chain` uses), so that `audit verify` holds. The state digests are the
template's: they are opaque, and the chain covers them.

Rows are written with `executemany` on SQLite and `COPY` on PostgreSQL.
`handlers/seed_history.py` plays the template returns and says what each copy gets.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from engine.api import Engine
from engine.errors import InputError
from engine.history import GENESIS_HASH, event_hash
from engine.spiff.ids import drawn_from

Row = dict[str, Any]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_DATE = r"20\d\d-[01]\d-[0-3]\d"
_STAMP = r'(?<="last_state_change":)\d+\.\d+'
#: Columns copied as they are: hashes (the chain's are computed again).
FIXED = ("state_digest", "prev_hash", "hash", "head_hash", "content_hash", "sha256")


class Text:
    """A text with slots, `literals[0] slot[0] literals[1] ... literals[-1]`, rendered
    by str.format (in C) from a copy's values."""

    __slots__ = ("keys", "pattern", "pick")

    def __init__(self, literals: Sequence[str], keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        escaped = [part.replace("{", "{{").replace("}", "}}") for part in literals]
        self.pattern = "{}".join(escaped)
        pick = itemgetter(*self.keys)
        self.pick: Callable[[Mapping[str, str]], tuple[str, ...]] = (
            pick if len(self.keys) > 1 else (lambda values: (pick(values),))
        )

    def render(self, values: Mapping[str, str]) -> str:
        return self.pattern.format(*self.pick(values))


class Compiler:
    """Splits one template's texts around its slots, numbering them as it meets them:
    `u<n>` the n-th distinct UUID, `s<n>` the n-th state-change stamp, `d<YYYY-MM-DD>` a
    date, and the caller's tokens under the names it gives them."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.tokens = dict(tokens)
        literal = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
        parts = [f"(?P<u>{_UUID})", f"(?P<s>{_STAMP})", f"(?P<d>{_DATE})"]
        if literal:
            parts.insert(2, f"(?P<t>{literal})")
        self.pattern = re.compile("|".join(parts))
        self.uuids: dict[str, int] = {}
        self.stamps = 0
        self.dates: set[str] = set()

    def text(self, value: str) -> str | Text:
        literals: list[str] = []
        keys: list[str] = []
        last = 0
        for match in self.pattern.finditer(value):
            kind, found = match.lastgroup, match.group()
            if kind == "u":
                key = f"u{self.uuids.setdefault(found, len(self.uuids))}"
            elif kind == "s":
                key = f"s{self.stamps}"
                self.stamps += 1
            elif kind == "t":
                key = self.tokens[found]
            else:
                key = f"d{found}"
                self.dates.add(found)
            literals.append(value[last : match.start()])
            keys.append(key)
            last = match.end()
        if not keys:
            return value
        literals.append(value[last:])
        return Text(literals, keys)

    def row(self, row: Mapping[str, Any]) -> Row:
        return {
            name: self.text(value) if isinstance(value, str) and name not in FIXED else value
            for name, value in row.items()
        }


def render(row: Mapping[str, Any], values: Mapping[str, str]) -> Row:
    """A template row with its slots filled."""
    return {k: v.render(values) if isinstance(v, Text) else v for k, v in row.items()}


def date_slots(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The date slots (`d<YYYY-MM-DD>`) the rows hold."""
    keys = {
        key
        for row in rows
        for value in row.values()
        if isinstance(value, Text)
        for key in value.keys
        if key.startswith("d")
    }
    return sorted(keys)


class TemplateFile:
    """The SQLite file template instances were run into, read row by row."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)

    def rows(self, table: str, column: str, value: Any, order: str = "rowid") -> list[Row]:
        cursor = self.conn.execute(
            f"SELECT * FROM {table} WHERE {column} = ? ORDER BY {order}",  # noqa: S608 - our names
            (value,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def definitions(self) -> dict[int, str]:
        """Each deployed version's id and content hash."""
        found = self.conn.execute("SELECT id, content_hash FROM definition").fetchall()
        return {int(i): str(h) for i, h in found}

    def close(self) -> None:
        self.conn.close()


def prepare(
    url: str, processes: Sequence[Path], users: Mapping[str, Sequence[str]], actor: str
) -> dict[str, int]:
    """Make the schema at `url`, which must hold no instance and no user yet, deploy
    `processes` and add `users` (the first an admin, who acts); the id of each deployed
    version by content hash.

    A database with users is refused like one with returns: the generator acts as its
    own admin, which only a database nobody is registered in (so one without rules) may
    let it do."""
    from sqlalchemy import func, select

    from engine.persistence.records import DefinitionRecord, InstanceRecord, UserRecord

    target = Engine(url)
    try:
        target.init()
        with target.db.read() as session:
            for record, holds in ((InstanceRecord, "returns"), (UserRecord, "users")):
                if session.scalar(select(func.count()).select_from(record)):
                    raise InputError(
                        f"{url} already holds {holds}; the generator fills an empty database",
                        "Give --db a new SQLite file or an empty PostgreSQL schema.",
                    )
        target.deploy(processes, actor=actor)
        for name, roles in users.items():
            target.add_user(name, roles, actor=actor)
        with target.db.read() as session:
            found = session.execute(select(DefinitionRecord.content_hash, DefinitionRecord.id))
            return {str(content_hash): int(number) for content_hash, number in found}
    finally:
        target.db.dispose()


def chain(instance: Row, events: Sequence[Row]) -> None:
    """Give the copied events their chain (prev_hash, hash) and the instance its head."""
    prev = GENESIS_HASH
    for row in events:
        row["prev_hash"] = prev
        row["hash"] = prev = event_hash(
            prev_hash=prev,
            instance_uid=instance["uid"],
            seq=row["seq"],
            at=datetime.fromisoformat(row["at"]).replace(tzinfo=UTC),
            actor=row["actor"],
            kind=row["kind"],
            bpmn_id=row["bpmn_id"],
            task_name=row["task_name"],
            task_id=row["task_id"],
            data=row["data"],
            process_id=row["process_id"],
            process_version=row["process_version"],
            state_digest=row["state_digest"],
        )
    instance["head_hash"] = prev


class Writer:
    """Rows gathered per table and written in bulk, the tables in the order given (the
    order their foreign keys need): executemany on SQLite, COPY on PostgreSQL. Values
    are as SQLite holds them (times as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text)."""

    def __init__(self, url: str, tables: Sequence[str], serial: Sequence[str] = ()) -> None:
        self.postgres = url.startswith("postgresql")
        self.serial = tuple(serial)
        self.columns: dict[str, list[str]] = {}
        self.pending: dict[str, list[tuple[Any, ...]]] = {table: [] for table in tables}
        if self.postgres:
            import psycopg

            self.pg = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            self.pg.execute("SET TIME ZONE 'UTC'")
        else:
            self.lite = sqlite3.connect(url.split(":///", 1)[1])
            self.lite.execute("PRAGMA synchronous = OFF")

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        columns = self.columns.setdefault(table, list(row))
        self.pending[table].append(tuple(row[c] for c in columns))

    def flush(self) -> None:
        for table, rows in self.pending.items():
            if not rows:
                continue
            names = ", ".join(self.columns[table])
            if self.postgres:
                statement = f"COPY {table} ({names}) FROM STDIN"
                with self.pg.cursor() as cursor, cursor.copy(statement) as copy:
                    for values in rows:
                        copy.write_row(values)
            else:
                marks = ", ".join("?" for _ in self.columns[table])
                self.lite.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - our names
                    rows,
                )
            rows.clear()
        (self.pg if self.postgres else self.lite).commit()

    def close(self) -> None:
        """Write what is left; on PostgreSQL move the sequences of `serial` tables past
        the ids given and vacuum the tables written; gather the planner's statistics."""
        self.flush()
        if self.postgres:
            with self.pg.cursor() as cursor:
                for table in self.serial:
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                    )
            self.pg.commit()
            # What autovacuum would do by itself in a while: the visibility map set (so
            # that index-only scans stay in the index) and the planner's statistics.
            self.pg.autocommit = True
            for table in self.pending:
                self.pg.execute(f"VACUUM ANALYZE {table}")
            self.pg.close()
        else:
            self.lite.execute("ANALYZE")
            self.lite.commit()
            self.lite.close()


__all__ = [
    "FIXED",
    "Compiler",
    "Row",
    "TemplateFile",
    "Text",
    "Writer",
    "chain",
    "date_slots",
    "drawn_from",
    "prepare",
    "render",
]
