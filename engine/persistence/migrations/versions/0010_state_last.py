"""An instance's state moved to the end of its row (SQLite).

SQLite stores a row's columns in order, and a value too long for the page runs on into
overflow pages: every column after the state (its stored data, its times, its summary)
was read by reading through the state first, tens of kilobytes per instance. Reports and
listings that read thousands of instances read their rows at a fraction of that cost
with the state last. PostgreSQL keeps long values out of line: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # A column added goes last; the old one is dropped and the new one takes its name.
    op.execute("ALTER TABLE instance ADD COLUMN state_last TEXT NOT NULL DEFAULT ''")
    op.execute("UPDATE instance SET state_last = state")
    op.execute("ALTER TABLE instance DROP COLUMN state")
    op.execute("ALTER TABLE instance RENAME COLUMN state_last TO state")


def downgrade() -> None:
    pass  # the order of columns means nothing to the revisions before this one
