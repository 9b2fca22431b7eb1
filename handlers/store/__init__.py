"""The return procedure's own records, behind narrow services.

Handlers never open sessions: each service task gets `ctx.services`, a `Services` bound
to the connection of the command that runs it, so whatever a handler writes commits or
rolls back together with the instance it belongs to. The tables have their own Alembic
branch (`returns`), published to the engine under the `artreturns.schemas` entry point,
so `artreturns init` creates and upgrades them with the engine's.

The stores (and SQLAlchemy) are imported when `Services` are first made: a command that
runs no handler, such as `artreturns tasks`, only needs `Folders`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData

DATA_ENV = "ARTRETURNS_DATA"


@dataclass(frozen=True)
class _Schema:
    versions: Path

    @property
    def metadata(self) -> MetaData:
        from handlers.store.tables import metadata

        return metadata


#: What the `artreturns.schemas` entry point publishes.
SCHEMA = _Schema(Path(__file__).parent / "migrations")


@dataclass(frozen=True)
class Folders:
    """Where files go: evidence (content-addressed) and the outbox of notices."""

    root: Path

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @classmethod
    def beside(cls, database_file: str | None) -> Folders:
        """ARTRETURNS_DATA if set; else a folder next to a SQLite file; else ./artreturns-data."""
        configured = os.environ.get(DATA_ENV)
        if configured:
            return cls(Path(configured))
        if database_file:
            path = Path(database_file)
            return cls(path.with_name(path.stem + "-data"))
        return cls(Path("artreturns-data"))


class Services:
    """Everything a handler may touch, bound to one command's connection and time."""

    def __init__(self, conn: Connection, folders: Folders, now: datetime) -> None:
        from handlers.store.carrier import LocalCarrier
        from handlers.store.claims import Claims
        from handlers.store.customers import CustomerFiles
        from handlers.store.evidence import Evidence
        from handlers.store.ledger import Ledger
        from handlers.store.numbers import Numbers
        from handlers.store.orders import Orders
        from handlers.store.outbox import Outbox

        self.conn = conn
        self.folders = folders
        self.now = now
        self.orders = Orders(conn, now)
        self.numbers = Numbers(conn, now)
        self.ledger = Ledger(conn, now)
        self.outbox = Outbox(conn, now, folders.outbox)
        self.evidence = Evidence(conn, now, folders.evidence)
        self.carrier = LocalCarrier(conn, now)
        self.claims = Claims(conn, now)
        self.customers = CustomerFiles(conn, now)


ServicesFactory: TypeAlias = Callable[["Connection", datetime], Services]


def services_factory(folders: Folders) -> ServicesFactory:
    """What the engine calls to build `ctx.services` for each command."""

    def build(conn: Connection, now: datetime | None = None) -> Services:
        return Services(conn, folders, now or datetime.now(UTC))

    return build


__all__ = ["SCHEMA", "Folders", "Services", "ServicesFactory", "services_factory"]
