"""Fuzz the order import with malformed CSV and JSON files.

Files are made from a valid one by changing what people and programs get wrong:
columns dropped, renamed or doubled; cells replaced by any text (quotes, newlines,
commas, NUL, right-to-left marks, fields of a hundred thousand characters); amounts,
currencies and dates that are not; an order given twice; other encodings (UTF-16,
Latin-1, a BOM); bytes cut or flipped. `orders import` takes the whole file or refuses
it with an EngineError that has a message, and a refused file leaves the database
exactly as it was: nothing is half-imported.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzing import (
    DEEP,
    FAST,
    TEXT,
    VALUES,
    budgets,
    done_or_refused_cleanly,
    json_text,
    snapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from returns import ORDER, OWNER
from sqlalchemy.engine import URL
from support import T0

from engine import Engine, FixedClock, InputError
from handlers import desk
from handlers.store import Folders, services_factory

COLUMNS = [
    "order_number",
    "channel",
    "jurisdiction",
    "currency",
    "sold_at",
    "delivered_at",
    "payment_method",
    "payer",
    "shipping_charge",
    "customer_name",
    "customer_email",
    "customer_locale",
    "customer_address",
    "artwork_id",
    "title",
    "artist",
    "category",
    "price",
    "custom_made",
    "indivisible_set",
    "auction_lot",
    "guarantee_years",
    "authenticity_disclaimer",
    "set_id",
    "condition_grade",
    "condition_notes",
    "certificate",
    "accessories",
]
ROW = {
    **dict.fromkeys(COLUMNS, ""),
    "order_number": "SO-9",
    "channel": "store",
    "jurisdiction": "EU",
    "currency": "EUR",
    "sold_at": "2026-10-01",
    "delivered_at": "2026-10-03",
    "payment_method": "card",
    "payer": "Ana Souza",
    "shipping_charge": "12.50",
    "customer_name": "Ana Souza",
    "customer_email": "ana@example.com",
    "customer_locale": "pt",
    "customer_address": "Rua Augusta 10, Lisboa",
    "artwork_id": "SO-9-A",
    "title": "Azulejo study",
    "artist": "Rui Lopes",
    "category": "craft",
    "price": "840.00",
    "guarantee_years": "0",
    "condition_grade": "good",
}
BAD_CELLS = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-1.00",
            "0.001",
            "1e3",
            "1,200.00",
            "\uff11\uff12\uff10\uff10",  # 1200 in full-width digits
            "99999999999999",
            "XXX",
            "cny",
            "2026-02-30",
            "31/10/2026",
            "2026-10-01T25:00",
            "yes please",
            '"',
            '""',
            "a\nb",
            "a,b",
            "\x00",
            "\ufeff",
        ]
    ),
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    columns = list(COLUMNS)
    rows = [dict(ROW), dict(ROW, artwork_id="SO-9-B", title="Second tile")]
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.sampled_from(rows))
        rows.append(dict(row, order_number=draw(st.sampled_from(["SO-9", "SO-10", ""]))))
    for _ in range(draw(st.integers(1, 5))):
        edit = draw(st.sampled_from(["cell", "cell", "cell", "drop", "rename", "double"]))
        column = draw(st.sampled_from(columns))
        if edit == "cell":
            draw(st.sampled_from(rows))[column] = draw(BAD_CELLS)
        elif edit == "drop" and len(columns) > 1:
            columns.remove(column)
        elif edit == "rename":
            columns[columns.index(column)] = draw(TEXT)
        elif edit == "double":
            columns.append(column)
    out = io.StringIO()
    writer = csv.writer(out, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return _encoded(draw, out.getvalue())


@st.composite
def json_files(draw: st.DrawFn) -> bytes:
    orders: list[Any] = [copy.deepcopy(ORDER), dict(copy.deepcopy(ORDER), order_number="SO-2")]
    for _ in range(draw(st.integers(1, 4))):
        order = draw(st.sampled_from(orders))
        where = draw(st.sampled_from(["order", "customer", "artwork", "flags", "condition"]))
        target: Any = order
        if where != "order":
            target = order.get("customer") if where == "customer" else order.get("artworks")
        if where in ("artwork", "flags", "condition"):
            target = target[0] if isinstance(target, list) and target else None
        if where in ("flags", "condition") and isinstance(target, dict):
            target = target.get(where)
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(sorted(target) or ["x"]))
        if draw(st.booleans()):
            target[key] = draw(st.one_of(VALUES, BAD_CELLS))
        else:
            target.pop(key, None)
    if draw(st.booleans()):
        orders.append(copy.deepcopy(draw(st.sampled_from(orders))))  # an order twice
    shape = draw(st.sampled_from(["list", "object", "one", "text"]))
    if shape == "text":
        return _encoded(draw, draw(st.one_of(TEXT, DEEP)))
    document: Any = {"list": orders, "object": {"orders": orders}, "one": orders[0]}[shape]
    return _encoded(draw, json_text(document))


def _encoded(draw: st.DrawFn, text: str) -> bytes:
    try:
        data = text.encode(draw(ENCODINGS))
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    if draw(st.integers(0, 4)) == 0 and data:  # a cut or a flipped byte now and then
        at = draw(st.integers(0, len(data) - 1))
        data = (
            data[:at]
            if draw(st.booleans())
            else data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]
        )
    return data


class Importer:
    def __init__(self, url: str | URL, root: Path) -> None:
        self.root = root
        self.folders = Folders(root / "data")
        self.engine = Engine(url, clock=FixedClock(T0), services=services_factory(self.folders))
        self.engine.init()
        self.imported = 0
        self.refused = 0

    def load(self, name: str, content: bytes) -> None:
        path = self.root / name
        path.write_bytes(content)
        if done_or_refused_cleanly(
            self.engine, lambda: desk.import_orders(self.engine, self.folders, path, actor=OWNER)
        ):
            self.imported += 1
        else:
            self.refused += 1


@pytest.fixture
def importer(tmp_path: Path) -> Iterator[Importer]:
    made = Importer(f"sqlite:///{tmp_path / 'orders.db'}", tmp_path)
    yield made
    made.engine.db.dispose()


@budgets
def test_a_csv_file_is_imported_whole_or_refused_whole(
    importer: Importer, budget: settings
) -> None:
    @budget
    @given(csv_files())
    def load(content: bytes) -> None:
        importer.load("orders.csv", content)

    load()
    assert importer.refused > 0


@budgets
def test_a_json_file_is_imported_whole_or_refused_whole(
    importer: Importer, budget: settings
) -> None:
    @budget
    @given(json_files())
    def load(content: bytes) -> None:
        importer.load("orders.json", content)

    load()
    assert importer.refused > 0


# -- what hypothesis found -------------------------------------------------------------------


FOUND = [
    ("orders.csv", b"order_number,title\n\xff\xfe1,T\n", "not UTF-8 text"),
    (
        "orders.csv",
        b"order_number,title\nSO-1," + b"x" * 200_000 + b"\n",
        "field larger than field limit",
    ),
    ("orders.json", b'[{"order_number": ' + b"9" * 5000 + b"}]", "more than 4,300 digits"),
    ("orders.json", b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
    (
        "orders.json",
        json.dumps([dict(ORDER, artworks="SO-1-W")]).encode(),
        "artworks must be a list",
    ),
    ("orders.json", json.dumps([dict(ORDER, artworks=5)]).encode(), "artworks must be a list"),
    (
        "orders.json",
        json.dumps([dict(ORDER, artworks=["SO-1-W"])]).encode(),
        "artworks must be a list",
    ),
]


@pytest.mark.parametrize(("name", "content", "words"), FOUND, ids=[w for *_, w in FOUND])
def test_files_that_once_crashed_the_import_are_refused_with_the_reason(
    importer: Importer, name: str, content: bytes, words: str
) -> None:
    """Each of these raised something other than an EngineError (UnicodeDecodeError,
    csv.Error, ValueError, RecursionError, AttributeError, TypeError)."""
    path = importer.root / name
    path.write_bytes(content)
    before = snapshot(importer.engine)
    with pytest.raises(InputError, match="nothing imported") as refused:
        desk.import_orders(importer.engine, importer.folders, path, actor=OWNER)
    assert words in refused.value.message
    assert snapshot(importer.engine) == before


def test_one_bad_order_among_good_ones_imports_none_of_them(importer: Importer) -> None:
    good = [dict(copy.deepcopy(ORDER), order_number=f"SO-{n}") for n in range(1, 6)]
    bad = dict(copy.deepcopy(ORDER), order_number="SO-6", currency="XXX")
    path = importer.root / "orders.json"
    path.write_text(json.dumps([*good, bad]), encoding="utf-8")
    before = snapshot(importer.engine)
    with pytest.raises(InputError, match="SO-6"):
        desk.import_orders(importer.engine, importer.folders, path, actor=OWNER)
    assert snapshot(importer.engine) == before
    path.write_text(json.dumps(good), encoding="utf-8")
    assert desk.import_orders(importer.engine, importer.folders, path, actor=OWNER).orders == 5


@pytest.mark.postgres
def test_a_refused_import_changes_nothing_on_postgresql(pg_url: URL, tmp_path: Path) -> None:
    """The same property on PostgreSQL, which (unlike SQLite) refuses NUL characters and
    text longer than its column: those refusals leave nothing behind either."""
    made = Importer(pg_url, tmp_path)
    try:

        @settings(FAST, max_examples=25)
        @given(st.one_of(csv_files(), json_files()), st.booleans())
        def load(content: bytes, as_csv: bool) -> None:
            made.load("orders.csv" if as_csv else "orders.json", content)

        load()
        for text in ("SO-\x00", "S" * 65):  # NUL, and longer than the column
            made.load("orders.json", json.dumps([dict(ORDER, order_number=text)]).encode())
        assert made.refused > 0
    finally:
        made.engine.db.dispose()
