"""Long texts compressed with lz4 on PostgreSQL.

PostgreSQL compresses a long value (an instance's state and data, an event's data)
before it moves it out of line, by default with pglz. Reading the data of 100,000
returns took 3.0 to 4.3 s of the server's time with pglz against 1.0 s with lz4 on the
same rows (docs/benchmarks.md); lz4 also compresses faster on every save. Values written
before this revision keep pglz until they are written again. A server built without lz4
keeps pglz, and SQLite does not compress: nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("instance", "state"), ("instance", "data"), ("event", "data"))


def _lz4_available() -> bool:
    # The values the server accepts for the setting are the methods it was built with.
    found = op.get_bind().execute(
        text(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY(enumvals)"
        )
    )
    return found.first() is not None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or not _lz4_available():
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION default")
