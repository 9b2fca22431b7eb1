"""The fields of an instance's data the report reads, kept beside the data.

`artreturns report` reads about twenty fields of each return's data. On PostgreSQL it
read and parsed each return's whole data (3.8 KB a return in the procedure's own) to
find them: 2.2 s of a 5 s report on 100,000 returns (docs/benchmarks.md). Every save now
also writes those fields, keyed by their dotted paths (`indicators.REPORT_PATHS`), into
`instance.report_data`; this revision adds the column and writes it for the instances
already there, from their stored data, a batch at a time. An instance without stored
data gets none (the report finds nothing in its data either).

SQLite appends the column after the state, where reading it would read through the
state: the report goes on reading SQLite's data with `json_extract` there, but the
column is written on both, so that it means the same everywhere.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.indicators import report_data

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000  # instances read and written at a time


def upgrade() -> None:
    bind = op.get_bind()
    # Already there when a revision stamped back runs again: then only the instances
    # without fields get theirs.
    if "report_data" not in {c["name"] for c in sa.inspect(bind).get_columns("instance")}:
        op.add_column("instance", sa.Column("report_data", sa.Text(), nullable=True))
    read = sa.text(
        "SELECT id, data FROM instance WHERE id > :after AND data IS NOT NULL "
        "AND report_data IS NULL ORDER BY id LIMIT :batch"
    )
    write = sa.text("UPDATE instance SET report_data = :report_data WHERE id = :id")
    after = 0
    while rows := bind.execute(read, {"after": after, "batch": BATCH}).all():
        bind.execute(
            write,
            # json, not orjson: orjson reads an integer beyond 64 bits as a float.
            [{"id": id_, "report_data": report_data(json.loads(text))} for id_, text in rows],
        )
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_column("instance", "report_data")
