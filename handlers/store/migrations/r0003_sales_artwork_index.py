"""Works sold by category and artist: `report` counts them for return rates, from the
index alone (the artworks' rows carry their flags and condition reports).

Revision ID: r0003
Revises: r0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "r0003"
down_revision: str | None = "r0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sales_artwork_category_artist", "sales_artwork", ["category", "artist"])


def downgrade() -> None:
    op.drop_index("ix_sales_artwork_category_artist", table_name="sales_artwork")
