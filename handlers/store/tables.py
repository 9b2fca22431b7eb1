"""The tables of the return procedure, beside the engine's.

Orders and artworks are the system of record a return is checked against; the ledger,
the outbox, shipments and claims hold the effects of handlers, each row under an
idempotency key with a unique constraint, so a handler that runs twice writes once.
Money is stored as integer minor units with its currency.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from engine.persistence.records import NAMING_CONVENTION, UTCDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

orders = Table(
    "sales_order",
    metadata,
    Column("order_number", String(64), primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("jurisdiction", String(8), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sold_at", Date, nullable=False),
    Column("delivered_at", Date),
    Column("payment_method", String(40), nullable=False),
    Column("payer", String(200), nullable=False),
    Column("shipping_charge_minor", BigInteger, nullable=False),
    Column("customer_name", String(200), nullable=False),
    Column("customer_email", String(254), nullable=False),
    Column("customer_locale", String(20), nullable=False),
    Column("customer_address", Text, nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
)

artworks = Table(
    "sales_artwork",
    metadata,
    Column("order_number", String(64), primary_key=True),
    Column("artwork_id", String(64), primary_key=True),
    Column("title", String(300), nullable=False),
    Column("artist", String(200), nullable=False),
    Column("category", String(20), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("flags", JSON, nullable=False),
    Column("condition", JSON, nullable=False),
    ForeignKeyConstraint(["order_number"], ["sales_order.order_number"]),
    # Return rates count the works sold per category and artist (revision r0003).
    Index("ix_sales_artwork_category_artist", "category", "artist"),
)

rma_numbers = Table(
    "rma_number",
    metadata,
    Column("number", String(20), primary_key=True),
    Column("year", Integer, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("order_number", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("assigned_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("year", "sequence"),
)

ledger = Table(
    "ledger_entry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("rma", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("channel", String(30), nullable=False),
    Column("payer", String(200), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_ledger_entry_rma", "rma"),
)

outbox = Table(
    "outbox_message",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("rma", String(20), nullable=False),
    Column("notice", String(40), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("file", String(500)),
    # Delivery (revision r0002): delivered_at is set once the notice has left, written to
    # the outbox folder or accepted by the SMTP server; until then it is pending.
    Column("delivered_at", UTCDateTime()),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_attempt_at", UTCDateTime()),
    Column("last_error", Text),
    # A sender's claim: nobody else tries the notice before this time.
    Column("claimed_until", UTCDateTime()),
    Index("ix_outbox_message_rma", "rma"),
    Index("ix_outbox_message_delivered_at", "delivered_at"),
)

evidence = Table(
    "evidence_file",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rma", String(20), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("locked_at", UTCDateTime()),
    UniqueConstraint("rma", "sha256"),
)

shipments = Table(
    "shipment",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("rma", String(20), nullable=False),
    Column("direction", String(20), nullable=False),
    Column("carrier", String(60), nullable=False),
    Column("tracking_number", String(60), nullable=False, unique=True),
    Column("paid_by", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("events", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_shipment_rma", "rma"),
)

claims = Table(
    "claim",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("rma", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("reference", String(40), nullable=False, unique=True),
    Column("counterparty", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("deadline", Date),
    Column("settled_at", UTCDateTime()),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("details", JSON, nullable=False),
    Index("ix_claim_rma", "rma"),
)

customer_files = Table(
    "customer_file_entry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("customer_email", String(254), nullable=False),
    Column("rma", String(20), nullable=False),
    Column("artist", String(200), nullable=False),
    Column("category", String(20), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("satisfaction", Integer),
    Column("comment", Text),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index("ix_customer_file_entry_customer", "customer_email"),
    Index("ix_customer_file_entry_category", "category"),
)
