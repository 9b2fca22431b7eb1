"""The return procedure's tables: orders, artworks, RMA numbers, ledger, outbox,
evidence, shipments, claims and customer files.

Revision ID: r0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("returns",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claim",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("counterparty", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_claim_idempotency_key")),
        sa.UniqueConstraint("reference", name=op.f("uq_claim_reference")),
    )
    op.create_index("ix_claim_rma", "claim", ["rma"], unique=False)
    op.create_table(
        "customer_file_entry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("customer_email", sa.String(length=254), nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=False),
        sa.Column("artist", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_file_entry")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_customer_file_entry_idempotency_key")),
    )
    op.create_index(
        "ix_customer_file_entry_category", "customer_file_entry", ["category"], unique=False
    )
    op.create_index(
        "ix_customer_file_entry_customer", "customer_file_entry", ["customer_email"], unique=False
    )
    op.create_table(
        "evidence_file",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_file")),
        sa.UniqueConstraint("rma", "sha256", name=op.f("uq_evidence_file_rma_sha256")),
    )
    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("channel", sa.String(length=30), nullable=False),
        sa.Column("payer", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entry")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_entry_idempotency_key")),
        sa.UniqueConstraint("reference", name=op.f("uq_ledger_entry_reference")),
    )
    op.create_index("ix_ledger_entry_rma", "ledger_entry", ["rma"], unique=False)
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=False),
        sa.Column("notice", sa.String(length=40), nullable=False),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_message_idempotency_key")),
    )
    op.create_index("ix_outbox_message_rma", "outbox_message", ["rma"], unique=False)
    op.create_table(
        "rma_number",
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_rma_number")),
        sa.UniqueConstraint("year", "sequence", name=op.f("uq_rma_number_year_sequence")),
    )
    op.create_table(
        "sales_order",
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("jurisdiction", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("sold_at", sa.Date(), nullable=False),
        sa.Column("delivered_at", sa.Date(), nullable=True),
        sa.Column("payment_method", sa.String(length=40), nullable=False),
        sa.Column("payer", sa.String(length=200), nullable=False),
        sa.Column("shipping_charge_minor", sa.BigInteger(), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_email", sa.String(length=254), nullable=False),
        sa.Column("customer_locale", sa.String(length=20), nullable=False),
        sa.Column("customer_address", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_number", name=op.f("pk_sales_order")),
    )
    op.create_table(
        "shipment",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("rma", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=20), nullable=False),
        sa.Column("carrier", sa.String(length=60), nullable=False),
        sa.Column("tracking_number", sa.String(length=60), nullable=False),
        sa.Column("paid_by", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_shipment_idempotency_key")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_shipment_tracking_number")),
    )
    op.create_index("ix_shipment_rma", "shipment", ["rma"], unique=False)
    op.create_table(
        "sales_artwork",
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("artwork_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("artist", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("condition", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_number"],
            ["sales_order.order_number"],
            name=op.f("fk_sales_artwork_order_number_sales_order"),
        ),
        sa.PrimaryKeyConstraint("order_number", "artwork_id", name=op.f("pk_sales_artwork")),
    )


def downgrade() -> None:
    op.drop_table("customer_file_entry")
    op.drop_table("claim")
    op.drop_table("shipment")
    op.drop_table("evidence_file")
    op.drop_table("outbox_message")
    op.drop_table("ledger_entry")
    op.drop_table("rma_number")
    op.drop_table("sales_artwork")
    op.drop_table("sales_order")
