"""Orders and their artworks: imported from CSV or JSON, read by intake."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.canonical import read_json
from handlers.money import Money, MoneyError
from handlers.store.tables import artworks, orders

CHANNELS = ("online_shop", "marketplace", "store", "auction")
JURISDICTIONS = ("CN", "EU", "other")
CATEGORIES = ("painting", "sculpture", "antique", "craft", "print", "photograph")
#: C0 controls but tab, line feed and carriage return; DEL; C1 controls (ESC starts the
#: sequences that recolour, retitle or clear a terminal).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
FLAG_DEFAULTS: dict[str, Any] = {
    "custom_made": False,
    "indivisible_set": False,
    "auction_lot": False,
    "guarantee_years": 0,
    "authenticity_disclaimer": False,
}


class OrderImportError(ValueError):
    """The file holds rows that cannot be imported; `problems` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(problems[:3]))
        self.problems = problems


@dataclass(frozen=True)
class Artwork:
    artwork_id: str
    title: str
    artist: str
    category: str
    price: Money
    flags: dict[str, Any]
    condition: dict[str, Any]

    def as_data(self) -> dict[str, Any]:
        return {
            "artwork_id": self.artwork_id,
            "title": self.title,
            "artist": self.artist,
            "category": self.category,
            "price": self.price.as_data(),
            "flags": dict(self.flags),
            "condition": dict(self.condition),
        }


@dataclass(frozen=True)
class Order:
    order_number: str
    channel: str
    jurisdiction: str
    currency: str
    sold_at: date
    delivered_at: date | None
    payment_method: str
    payer: str
    shipping_charge: Money
    customer: dict[str, str]
    artworks: list[Artwork] = field(default_factory=list)

    def artwork(self, artwork_id: str) -> Artwork | None:
        return next((a for a in self.artworks if a.artwork_id == artwork_id), None)

    def as_data(self) -> dict[str, Any]:
        return {
            "order_number": self.order_number,
            "channel": self.channel,
            "jurisdiction": self.jurisdiction,
            "currency": self.currency,
            "sold_at": self.sold_at.isoformat(),
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "payment_method": self.payment_method,
            "payer": self.payer,
            "shipping_charge": self.shipping_charge.as_data(),
        }


# -- parsing ---------------------------------------------------------------------------


def parse_file(name: str, content: bytes) -> list[dict[str, Any]]:
    """Orders from a .json (a list of orders with nested artworks) or a .csv (one row per
    artwork, order columns repeated) file, as plain dicts ready for `validate`."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OrderImportError(
            [f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8 and import it again"]
        ) from exc
    if name.lower().endswith(".json"):
        try:
            loaded = read_json(text)
        except ValueError as exc:
            raise OrderImportError([f"{name}: not JSON ({exc})"]) from exc
        if isinstance(loaded, dict):
            loaded = loaded.get("orders", [loaded])
        if not isinstance(loaded, list) or not all(isinstance(o, dict) for o in loaded):
            raise OrderImportError([f"{name}: expected a list of orders"])
        return loaded
    if name.lower().endswith(".csv"):
        return _orders_from_csv(name, text)
    raise OrderImportError([f"{name}: give a .json or a .csv file"])


def _orders_from_csv(name: str, text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    grouped: dict[str, dict[str, Any]] = {}
    try:
        rows = list(reader)
    except csv.Error as exc:  # a field over the csv module's size limit, a stray NUL
        raise OrderImportError([f"{name}: {exc} (near line {reader.line_num + 1})"]) from exc
    for line, row in enumerate(rows, start=2):
        number = (row.get("order_number") or "").strip()
        if not number:
            raise OrderImportError([f"{name}:{line}: order_number is empty"])
        order = grouped.setdefault(
            number,
            {
                "order_number": number,
                "channel": row.get("channel", ""),
                "jurisdiction": row.get("jurisdiction", ""),
                "currency": row.get("currency", ""),
                "sold_at": row.get("sold_at", ""),
                "delivered_at": row.get("delivered_at") or None,
                "payment_method": row.get("payment_method", ""),
                "payer": row.get("payer", ""),
                "shipping_charge": row.get("shipping_charge") or "0",
                "customer": {
                    "name": row.get("customer_name", ""),
                    "email": row.get("customer_email", ""),
                    "locale": row.get("customer_locale", "") or "en",
                    "address": row.get("customer_address", ""),
                },
                "artworks": [],
            },
        )
        flags = {key: row.get(key, "") for key in FLAG_DEFAULTS}
        order["artworks"].append(
            {
                "artwork_id": row.get("artwork_id", ""),
                "title": row.get("title", ""),
                "artist": row.get("artist", ""),
                "category": row.get("category", ""),
                "price": row.get("price", ""),
                "flags": {**flags, "set_id": row.get("set_id") or None},
                "condition": {
                    "grade": row.get("condition_grade", ""),
                    "notes": row.get("condition_notes", ""),
                    "certificate": row.get("certificate", ""),
                    "accessories": [
                        a.strip() for a in (row.get("accessories") or "").split(";") if a.strip()
                    ],
                },
            }
        )
    return list(grouped.values())


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("1", "true", "yes", "y"):
        return True
    if text in ("", "0", "false", "no", "n"):
        return False
    raise ValueError(f"{value!r} is not yes or no")


def _date(value: Any, what: str, required: bool = True) -> date | None:
    if value in (None, ""):
        if required:
            raise ValueError(f"{what} is missing")
        return None
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value).strip()).date()
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} is not an ISO date") from exc


def validate(raw_orders: Iterable[Mapping[str, Any]]) -> list[Order]:
    """Check every order and artwork; raise with every problem found, not only the first."""
    problems: list[str] = []
    result: list[Order] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_orders, start=1):
        number = str(raw.get("order_number") or "").strip()
        where = f"order {number or '#' + str(index)}"
        if not number:
            problems.append(f"{where}: order_number is missing")
            continue
        if number in seen:
            problems.append(f"{where}: appears twice in the file")
            continue
        seen.add(number)
        controlled = sorted(set(_controls(raw, "")))
        if controlled:
            problems.append(
                f"{where}: {', '.join(controlled)} holds control characters (such as ESC), "
                "which a terminal showing it would obey: remove them"
            )
            continue
        try:
            order = _order(raw, number)
        except (ValueError, MoneyError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        artwork_problems: list[str] = []
        ids: set[str] = set()
        items = raw.get("artworks") or []
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            problems.append(f"{where}: artworks must be a list of objects")
            continue
        for item in items:
            try:
                artwork = _artwork(item, order.currency)
            except (ValueError, MoneyError, TypeError) as exc:
                artwork_problems.append(f"{where}, artwork {item.get('artwork_id')!r}: {exc}")
                continue
            if artwork.artwork_id in ids:
                artwork_problems.append(f"{where}: artwork {artwork.artwork_id} appears twice")
                continue
            ids.add(artwork.artwork_id)
            order.artworks.append(artwork)
        if not order.artworks and not artwork_problems:
            artwork_problems.append(f"{where}: has no artworks")
        problems.extend(artwork_problems)
        result.append(order)
    if problems:
        raise OrderImportError(problems)
    return result


def has_control(text: str) -> bool:
    """Whether `text` holds a control character other than tab and line ends."""
    return _CONTROL.search(text) is not None


def _controls(value: Any, where: str) -> Iterator[str]:
    """Where in an order (field names, dotted) text holds control characters."""
    if isinstance(value, str):
        if has_control(value):
            yield where
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _controls(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _controls(item, f"{where}[{index}]")


def _order(raw: Mapping[str, Any], number: str) -> Order:
    channel = str(raw.get("channel") or "").strip()
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    jurisdiction = str(raw.get("jurisdiction") or "").strip()
    if jurisdiction not in JURISDICTIONS:
        raise ValueError(f"jurisdiction {jurisdiction!r} is not one of {', '.join(JURISDICTIONS)}")
    currency = str(raw.get("currency") or "").strip().upper()
    customer = raw.get("customer") or {}
    if not isinstance(customer, Mapping):
        raise ValueError("customer must be an object with name, email, locale and address")
    name, email = str(customer.get("name") or "").strip(), str(customer.get("email") or "").strip()
    if not name or "@" not in email:
        raise ValueError("the customer needs a name and an e-mail address")
    sold_at = _date(raw.get("sold_at"), "sold_at")
    assert sold_at is not None
    delivered_at = _date(raw.get("delivered_at"), "delivered_at", required=False)
    if delivered_at is not None and delivered_at < sold_at:
        raise ValueError("delivered_at is before sold_at")
    shipping_charge = Money.of(raw.get("shipping_charge") or "0", currency)
    if shipping_charge.amount < 0:
        raise ValueError(f"shipping_charge {shipping_charge} must not be less than zero")
    return Order(
        order_number=number,
        channel=channel,
        jurisdiction=jurisdiction,
        currency=currency,
        sold_at=sold_at,
        delivered_at=delivered_at,
        payment_method=str(raw.get("payment_method") or "original").strip(),
        payer=str(raw.get("payer") or name).strip(),
        shipping_charge=shipping_charge,
        customer={
            "name": name,
            "email": email,
            "locale": str(customer.get("locale") or "en").strip(),
            "address": str(customer.get("address") or "").strip(),
        },
    )


def _artwork(raw: Mapping[str, Any], currency: str) -> Artwork:
    artwork_id = str(raw.get("artwork_id") or "").strip()
    if not artwork_id:
        raise ValueError("artwork_id is missing")
    category = str(raw.get("category") or "").strip()
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not one of {', '.join(CATEGORIES)}")
    title, artist = str(raw.get("title") or "").strip(), str(raw.get("artist") or "").strip()
    if not title or not artist:
        raise ValueError("title and artist are required")
    raw_price = raw.get("price")
    if raw_price is None or raw_price == "":
        raise ValueError("price is missing")
    price = Money.of(raw_price, currency)
    if not price.is_positive:
        raise ValueError(f"price {price} must be more than zero")
    given = raw.get("flags") or {}
    if not isinstance(given, Mapping):
        raise ValueError("flags must be an object")
    flags: dict[str, Any] = {}
    for key, default in FLAG_DEFAULTS.items():
        value = given.get(key, default)
        if isinstance(default, bool):
            flags[key] = _bool(value)
        else:
            text = str(value if value not in (None, "") else default).strip()
            if not text.isdigit():
                raise ValueError(f"{key} {value!r} is not a whole number of years")
            flags[key] = int(text)
    flags["set_id"] = (str(given.get("set_id")).strip() or None) if given.get("set_id") else None
    condition = raw.get("condition") or {}
    if not isinstance(condition, Mapping):
        raise ValueError("condition must be an object")
    return Artwork(artwork_id, title, artist, category, price, flags, dict(condition))


# -- storage ---------------------------------------------------------------------------


class Orders:
    """The orders a return is checked against."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def store(self, validated: list[Order]) -> tuple[int, int]:
        """Insert new orders and replace changed ones; return (orders, artworks) stored."""
        artwork_count = 0
        for order in validated:
            self.conn.execute(
                artworks.delete().where(artworks.c.order_number == order.order_number)
            )
            self.conn.execute(orders.delete().where(orders.c.order_number == order.order_number))
            self.conn.execute(
                orders.insert().values(
                    order_number=order.order_number,
                    channel=order.channel,
                    jurisdiction=order.jurisdiction,
                    currency=order.currency,
                    sold_at=order.sold_at,
                    delivered_at=order.delivered_at,
                    payment_method=order.payment_method,
                    payer=order.payer,
                    shipping_charge_minor=order.shipping_charge.minor,
                    customer_name=order.customer["name"],
                    customer_email=order.customer["email"],
                    customer_locale=order.customer["locale"],
                    customer_address=order.customer["address"],
                    imported_at=self.now,
                )
            )
            for artwork in order.artworks:
                self.conn.execute(
                    artworks.insert().values(
                        order_number=order.order_number,
                        artwork_id=artwork.artwork_id,
                        title=artwork.title,
                        artist=artwork.artist,
                        category=artwork.category,
                        price_minor=artwork.price.minor,
                        flags=artwork.flags,
                        condition=artwork.condition,
                    )
                )
                artwork_count += 1
        return len(validated), artwork_count

    def get(self, order_number: str) -> Order | None:
        row = (
            self.conn.execute(select(orders).where(orders.c.order_number == order_number))
            .mappings()
            .first()
        )
        if row is None:
            return None
        currency = row["currency"]
        order = Order(
            order_number=row["order_number"],
            channel=row["channel"],
            jurisdiction=row["jurisdiction"],
            currency=currency,
            sold_at=row["sold_at"],
            delivered_at=row["delivered_at"],
            payment_method=row["payment_method"],
            payer=row["payer"],
            shipping_charge=Money.from_minor(row["shipping_charge_minor"], currency),
            customer={
                "name": row["customer_name"],
                "email": row["customer_email"],
                "locale": row["customer_locale"],
                "address": row["customer_address"],
            },
        )
        for item in self.conn.execute(
            select(artworks)
            .where(artworks.c.order_number == order_number)
            .order_by(artworks.c.artwork_id)
        ).mappings():
            order.artworks.append(
                Artwork(
                    artwork_id=item["artwork_id"],
                    title=item["title"],
                    artist=item["artist"],
                    category=item["category"],
                    price=Money.from_minor(item["price_minor"], currency),
                    flags=dict(item["flags"]),
                    condition=dict(item["condition"]),
                )
            )
        return order
