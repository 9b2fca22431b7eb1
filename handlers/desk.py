"""The returns desk: what customer service does before and around a process instance.

Loading orders, registering a customer's application (which allocates its RMA number,
stores the evidence and starts `return_request`), adding evidence later. The command line
calls these; they use the engine's public API and the store's services.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import CommandResult, Engine, InputError, NotFoundError
from engine.reading import Reader
from handlers.money import MoneyError
from handlers.store import Folders, Services
from handlers.store import picture as returns_picture
from handlers.store.evidence import EvidenceError
from handlers.store.orders import OrderImportError, has_control, parse_file, validate
from handlers.vocabulary import REASONS, TYPES

PROCESS = "return_request"


@dataclass(frozen=True)
class Imported:
    orders: int
    artworks: int


def import_orders(engine: Engine, folders: Folders, path: Path, *, actor: str) -> Imported:
    """Load orders from a CSV or JSON file; nothing is stored when any row is wrong.

    Admins only (once users exist); the import is in the operation log, in the same
    transaction as the orders it stored."""
    engine.authorize(actor, "orders import", "administer", target=path.name, what="import orders")
    if not path.is_file():
        raise InputError(f"no such file: {path}", "Give a .csv or .json file of orders.")
    try:
        validated = validate(parse_file(path.name, path.read_bytes()))
    except OrderImportError as exc:
        raise InputError(
            f"{path.name}: {len(exc.problems)} problem(s), nothing imported: "
            + "; ".join(exc.problems[:10]),
            "Fix the rows named and import the file again.",
        ) from exc
    with engine.db.connect() as conn:
        count = Services(conn, folders, engine.clock.now()).orders.store(validated)
        done = Imported(*count)
        engine.log_operation(
            conn,
            actor,
            "orders import",
            path.name,
            {"orders": done.orders, "artworks": done.artworks},
        )
    return done


def apply(
    engine: Engine,
    folders: Folders,
    *,
    order_number: str,
    artwork_ids: Sequence[str],
    request_type: str,
    reason: str,
    description: str,
    evidence: Sequence[Path] = (),
    actor: str,
    process: str = PROCESS,
    extra: Mapping[str, Any] | None = None,
) -> CommandResult:
    """Register a customer's return or exchange: check the order, allocate the RMA
    number, keep the evidence, start `return_request` under that number.

    `process` and `extra` start another flow with the same data (plus `extra`): tests
    use them to run one part of the procedure on its own."""
    if request_type not in TYPES:
        raise InputError(f"type {request_type!r} is not one of {', '.join(TYPES)}")
    if reason not in REASONS:
        close = difflib.get_close_matches(reason, REASONS, n=1)
        raise InputError(
            f"reason {reason!r} is not one of {', '.join(REASONS)}",
            f"Did you mean '{close[0]}'?" if close else None,
        )
    if not artwork_ids:
        raise InputError("name at least one artwork with --artwork")
    if has_control(description):
        raise InputError(
            "the description holds control characters (such as ESC), which a terminal "
            "showing it would obey: remove them"
        )
    # Before a number is taken or a file kept: a refused request leaves nothing behind.
    engine.authorize(actor, "apply", "start", process=process, what="register a return")
    now = engine.clock.now()
    with engine.db.connect() as conn:
        services = Services(conn, folders, now)
        order = services.orders.get(order_number)
        if order is None:
            raise NotFoundError(
                f"no order {order_number!r} on record",
                "Load orders with `artreturns orders import FILE`.",
            )
        known = [a.artwork_id for a in order.artworks]
        unknown = [a for a in artwork_ids if a not in known]
        if unknown:
            raise InputError(
                f"order {order_number} has no artwork {unknown[0]!r}",
                f"Its artworks are: {', '.join(known)}.",
            )
        works = [order.artwork(a) for a in artwork_ids]
        rma = services.numbers.allocate(order_number)
        stored = []
        for path in evidence:
            try:
                item = services.evidence.add(rma, Path(path), actor)
            except (EvidenceError, OSError) as exc:
                raise InputError(f"evidence {path}: {exc}") from exc
            stored.append({"name": item.name, "sha256": item.sha256, "kind": item.kind})
    artworks = [w.as_data() for w in works if w is not None]
    data: dict[str, Any] = {
        "rma": rma,
        "request": {
            "order_number": order_number,
            "artwork_ids": list(artwork_ids),
            "type": request_type,
            "reason": reason,
            "description": description,
            "evidence": stored,
            "reported_at": now.isoformat(),
        },
        "order": order.as_data(),
        "customer": dict(order.customer),
        "artworks": artworks,
        "artwork": artworks[0],
        **(extra or {}),
    }
    try:
        return engine.start(process, data, business_key=rma, actor=actor)
    except Exception:
        with engine.db.connect() as conn:
            Services(conn, folders, now).numbers.set_status(rma, "void")
        raise


def add_evidence(
    engine: Engine, folders: Folders, rma: str, files: Sequence[Path], actor: str
) -> list[dict[str, Any]]:
    """Keep more evidence for a return (inspection photos, reports), with their hashes."""
    engine.show(rma)  # the return must exist
    added = []
    with engine.db.connect() as conn:
        services = Services(conn, folders, engine.clock.now())
        for path in files:
            try:
                item = services.evidence.add(rma, Path(path), actor)
            except (EvidenceError, OSError, MoneyError) as exc:
                raise InputError(f"evidence {path}: {exc}") from exc
            added.append({"name": item.name, "sha256": item.sha256, "kind": item.kind})
    return added


def list_evidence(engine: Engine, folders: Folders, rma: str) -> list[dict[str, Any]]:
    """The evidence kept for a return, each file checked against its SHA-256."""
    engine.show(rma)  # the return must exist
    with engine.db.connect() as conn:
        return _evidence(Services(conn, folders, engine.clock.now()), rma)


def _evidence(services: Services, rma: str) -> list[dict[str, Any]]:
    """A return's evidence files, each checked against its SHA-256 (`intact`)."""
    reader = Reader.on(services.conn)
    return returns_picture.evidence(reader, services.folders, rma)


@dataclass(frozen=True)
class ReturnLine:
    """One return as the desk sees it: the ticket, where the process is, the money."""

    rma: str
    order_number: str
    works: str
    request_type: str
    reason: str
    ticket: str
    process: str
    where: str
    rule: str | None
    refunded: str | None
    charged: str | None
    notices: int

    def as_data(self) -> dict[str, Any]:
        return {
            "rma": self.rma,
            "order_number": self.order_number,
            "works": self.works,
            "type": self.request_type,
            "reason": self.reason,
            "ticket": self.ticket,
            "process": self.process,
            "where": self.where,
            "rule": self.rule,
            "refunded": self.refunded,
            "charged": self.charged,
            "notices": self.notices,
        }


def overview(engine: Engine, folders: Folders, limit: int = 50) -> list[ReturnLine]:
    """The most recent returns, newest first: ticket status, where each one is waiting
    (or that it ended), the rule that declined it, what was refunded or charged."""
    with engine.db.connect() as conn:
        services = Services(conn, folders, engine.clock.now())
        rows = services.numbers.recent(limit)
        money = {number: services.ledger.entries(number) for number, _, _ in rows}
        sent = {number: len(services.outbox.sent(number)) for number, _, _ in rows}
    lines = []
    for number, order_number, ticket in rows:
        try:
            instance = engine.show(number)
        except NotFoundError:
            continue
        data = instance.data
        request = data.get("request") or {}
        works = ", ".join(str(w.get("title")) for w in data.get("artworks") or [])
        waiting = [t.name for t in instance.open_tasks if t.kind in ("user", "manual", "message")]
        if not waiting:  # only the clock: say what for and until when
            waiting = [
                f"{t.name} ({t.due_at:%Y-%m-%d})" if t.due_at else t.name
                for t in instance.open_tasks
                if t.kind == "timer"
            ]
        if instance.status == "running":
            where = "waiting: " + "; ".join(waiting)
        else:
            where = instance.status
        declined = ticket in ("declined", "rejected")
        lines.append(
            ReturnLine(
                rma=number,
                order_number=order_number,
                works=works,
                request_type=str(request.get("type") or ""),
                reason=str(request.get("reason") or ""),
                ticket=ticket,
                process=instance.status,
                where=where,
                rule=returns_picture.closing_rule(data) if declined else None,
                refunded=_total(money[number], ("refund", "store_credit")),
                charged=_total(money[number], ("charge",)),
                notices=sent[number],
            )
        )
    return lines


def _total(entries: Sequence[Any], kinds: tuple[str, ...]) -> str | None:
    chosen = [e.amount for e in entries if e.kind in kinds]
    if not chosen:
        return None
    total = chosen[0]
    for amount in chosen[1:]:
        total = total + amount
    return str(total)


def picture(
    engine: Engine, folders: Folders, rma: str, data: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Everything about one return on one page (`handlers.picture.picture`), read on
    the engine's connection."""
    with engine.db.read() as session:
        reader = Reader.on(session.connection())
        return returns_picture.picture(reader, folders, rma, data)
