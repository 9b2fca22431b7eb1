"""Data safety: the evidence store keeps files under their SHA-256 and checks them on
every read; no name, label, number or path a user gives makes a store write or read
outside its folder; amounts are refused when they are not money (NaN, infinite,
negative, more decimals than the currency has, an exponent, not a number, an unknown
currency) wherever they enter; and names in Chinese, Japanese, Arabic and Hebrew (with
bidi controls), emoji and combining marks come back unchanged from every command, in
CSV as quoted UTF-8 and in HTML as text, never as markup.

One return is registered once for the module (through the command line, as the desk
does it) and copied for each test that changes it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from lxml import html as lxml_html

from cli import cli
from engine import BpmnError, TaskContext
from handlers import exchange, payments, shipping
from handlers.common import HandlerInputError
from handlers.money import Money, MoneyError
from handlers.store import picture
from handlers.store.evidence import Evidence, EvidenceError
from handlers.store.orders import OrderImportError, parse_file, validate
from handlers.store.outbox import file_name, write_file

PROCESSES = Path(__file__).parent.parent.parent / "processes"
NOW = "2026-11-02T09:00Z"
RMA = "RMA-2026-000001"


class Cli:
    """`artreturns` in-process on one database, as one user, at a fixed time."""

    def __init__(self, db: str) -> None:
        self.db = db

    def __call__(self, *args: str, code: int = 0, now: str = NOW, actor: str = "tester") -> Result:
        argv = ["--db", self.db, "--now", now, "--as", actor, *args]
        result = CliRunner().invoke(cli, argv, prog_name="artreturns", catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self(*args, "--json", **kwargs).stdout)


# -- hostile and foreign text ----------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
CUSTOMER = f"王芳 {SCRIPT}"
TITLE = f"{IMG}富嶽三十六景 「神奈川沖浪裏」"
# Arabic and Hebrew with isolates and an override, an emoji and a combining accent
# (e + U+0301, which must not be normalised to é).
ARTIST = "葛飾北斎 مرحبا \u2067ش\u2069 😀 Cafe\u0301"
ADDRESS = "שלום \u202e\u05e2\u05d5\u05dc\u05dd\u202c, 東京都"
DESCRIPTION = 'وصف \u200f<script>alert(2)</script> 描述, "quoted", line\nbreak'
COMMENT = "הערה 👍 <i>x</i> & =1+1"
NOTE = "承認しました \u202b<b>ok</b>\u202c 👩\u200d🎨"
PHOTO_NAME = "ひび割れ <b>x & y.jpg"


def _orders_json() -> str:
    order = {
        "order_number": "U-1",
        "channel": "online_shop",
        "jurisdiction": "EU",
        "currency": "EUR",
        "sold_at": "2026-10-25",
        "delivered_at": "2026-10-28",
        "payment_method": "card",
        "shipping_charge": "12.50",
        "customer": {
            "name": CUSTOMER,
            "email": "wf@example.com",
            "locale": "zh-Hant",
            "address": ADDRESS,
        },
        "artworks": [
            {
                "artwork_id": "W-1",
                "title": TITLE,
                "artist": ARTIST,
                "category": "print",
                "price": "1200.00",
            }
        ],
    }
    return json.dumps([order], ensure_ascii=False)


CSV_HEADER = (
    "order_number,channel,jurisdiction,currency,sold_at,delivered_at,payment_method,payer,"
    "shipping_charge,customer_name,customer_email,customer_locale,customer_address,"
    "artwork_id,title,artist,category,price"
)


def _csv_order(number: str, *, price: str = "1200", shipping: str = "0", currency: str = "CNY",
               title: str = "Plum blossom", artist: str = "Lin Feng") -> str:  # fmt: skip
    row = [
        number, "online_shop", "CN", currency, "2026-10-18", "2026-10-20", "alipay",
        "Zhao Lei", shipping, "Zhao Lei", "zhao@example.com", "zh-Hant", "3 Xinhua Road",
        f"{number}-W", title, artist, "print", price,
    ]  # fmt: skip
    out = io.StringIO()
    csv.writer(out).writerow(row)
    return f"{CSV_HEADER}\n{out.getvalue()}"


def _settings() -> list[str]:
    """The environment's settings that would change what a command does or prints."""
    return [
        name
        for name in os.environ
        if name.startswith("ARTRETURNS_") or name in ("FORCE_COLOR", "TTY_COMPATIBLE")
    ]


# -- the module's return -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _settings():
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a database with the procedure deployed, the order U-1 (foreign
    and hostile names) imported and RMA-2026-000001 registered with a photo, commented
    on and approved."""
    saved = {name: os.environ.pop(name) for name in _settings()}
    try:
        folder = tmp_path_factory.mktemp("registered")
        site = folder / "site"
        site.mkdir()
        run = Cli(f"sqlite:///{site / 'desk.db'}")
        run("init")
        run("deploy", str(PROCESSES), actor="owner")
        orders = folder / "注文 orders.json"
        orders.write_text(_orders_json(), encoding="utf-8")
        run("orders", "import", str(orders), actor="owner")
        photo = folder / PHOTO_NAME
        photo.write_bytes(b"\xff\xd8\xff\xe0 crack in the lower left corner")
        run(
            "apply",
            *("--order", "U-1", "--artwork", "W-1", "--type", "return"),
            *("--reason", "no_reason", "--description", DESCRIPTION),
            *("--evidence", str(photo)),
            now=NOW,
            actor="cs-ann",
        )
        run("comment", RMA, COMMENT, now=NOW, actor="cs-ann")
        return folder
    finally:
        os.environ.update(saved)


@pytest.fixture
def desk(registered: Path, tmp_path: Path) -> tuple[Cli, Path]:
    """A copy of the module's database and its files: (the CLI on it, its folder)."""
    site = tmp_path / "site"
    shutil.copytree(registered / "site", site, symlinks=True)
    return Cli(f"sqlite:///{site / 'desk.db'}"), site


def _store(site: Path) -> Path:
    return site / "desk-data" / "evidence"


def _stored_files(site: Path) -> list[Path]:
    return sorted(p for p in _store(site).rglob("*") if not p.is_dir() or p.is_symlink())


def _tree(folder: Path) -> dict[str, bytes | str]:
    """Every file under `folder` (links as their target), to tell what a command wrote."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = path.read_bytes()
    return found


def _rows(site: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(site / "desk.db") as conn:
        return conn.execute(sql, args).fetchall()


# == evidence: content-addressed, verified on read ========================================


def test_evidence_is_stored_under_its_sha256_once(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, site = desk
    [kept] = run.json("evidence", "list", RMA)
    content = b"\xff\xd8\xff\xe0 crack in the lower left corner"
    sha = picture.sha256_of(_store(site) / kept["sha256"][:2] / kept["sha256"])
    assert kept["sha256"] == sha
    assert (kept["name"], kept["size"], kept["kind"], kept["intact"]) == (
        PHOTO_NAME,
        len(content),
        "photo",
        True,
    )
    # The same content again, under another name, and a second file.
    again = tmp_path / "copy.jpg"
    again.write_bytes(content)
    other = tmp_path / "report.pdf"
    other.write_bytes(b"%PDF-1.7 inspection report")
    run("evidence", "add", RMA, str(again), str(other), actor="cs-ann")
    listed = run.json("evidence", "list", RMA)
    assert [(e["name"], e["intact"]) for e in listed] == [(PHOTO_NAME, True), ("report.pdf", True)]
    stored = _stored_files(site)
    assert [p.name for p in stored] == sorted([sha, picture.sha256_of(other)], key=lambda s: s)
    assert all(p.parent.name == p.name[:2] for p in stored)
    assert (_store(site) / sha[:2] / sha).read_bytes() == content
    assert not [p for p in _store(site).iterdir() if p.name.startswith(".incoming")]


@pytest.mark.parametrize("damage", ["changed", "missing", "linked"])
def test_a_changed_or_missing_file_is_named_on_every_read(
    desk: tuple[Cli, Path], tmp_path: Path, damage: str
) -> None:
    run, site = desk
    [kept] = run.json("evidence", "list", RMA)
    sha = kept["sha256"]
    path = _store(site) / sha[:2] / sha
    original = path.read_bytes()
    path.unlink()
    if damage == "changed":
        path.write_bytes(original.replace(b"crack", b"CRACK"))
    elif damage == "linked":  # a link to a file outside with the very same content
        outside = tmp_path / "elsewhere.jpg"
        outside.write_bytes(original)
        path.symlink_to(outside)

    refused = run("evidence", "list", RMA, code=5)
    assert f"evidence of {RMA} changed or missing: {PHOTO_NAME} ({sha[:12]})" in refused.stderr
    assert "NO: content changed or missing" in refused.stdout
    as_json = run("evidence", "list", RMA, "--json", code=5)
    assert [e["intact"] for e in json.loads(as_json.stdout)] == [False]
    shown = run.json("show", RMA)
    assert [(e["name"], e["intact"]) for e in shown["return"]["evidence"]] == [(PHOTO_NAME, False)]
    out = tmp_path / "audit.html"
    run("audit", "report", RMA, "-o", str(out), actor="owner")
    rows = lxml_html.fromstring(out.read_text(encoding="utf-8")).xpath(
        "//tr[td[contains(., $sha)]]", sha=sha
    )
    assert len(rows) == 1
    assert "NO: missing or changed" in rows[0].text_content()

    # The original, added again, restores the file (and a link is replaced, not followed).
    source = tmp_path / "original.jpg"
    source.write_bytes(original)
    run("evidence", "add", RMA, str(source), actor="cs-ann")
    assert not path.is_symlink()
    assert path.read_bytes() == original
    assert [e["intact"] for e in run.json("evidence", "list", RMA)] == [True]
    if damage == "linked":
        assert (tmp_path / "elsewhere.jpg").read_bytes() == original


def test_a_locked_file_restored_stays_read_only(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, site = desk
    [kept] = run.json("evidence", "list", RMA)
    path = _store(site) / kept["sha256"][:2] / kept["sha256"]
    original = path.read_bytes()
    with _evidence(site) as store:
        assert store.lock(RMA) == 1
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    path.unlink()
    source = tmp_path / "original.jpg"
    source.write_bytes(original)
    run("evidence", "add", RMA, str(source), actor="cs-ann")
    assert path.read_bytes() == original
    assert path.stat().st_mode & 0o222 == 0


# == paths: nothing a user gives leads a store outside its folder =======================


def test_what_may_be_added_is_a_regular_file_the_operator_names(
    desk: tuple[Cli, Path], tmp_path: Path
) -> None:
    """A file the operator names is read wherever it is (relative with ../ or absolute):
    the operator may read it anyway. What is written is the store's own path, from the
    digest alone. Links, folders, pipes and devices are refused, and nothing is kept."""
    run, site = desk
    before = len(run.json("evidence", "list", RMA))
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(b"not for the store")
    (outside / "link.jpg").symlink_to(secret)
    (outside / "dangling.jpg").symlink_to(outside / "nothing")
    (outside / "folder.jpg").mkdir()
    os.mkfifo(outside / "pipe.jpg")
    refusals = {
        str(outside / "link.jpg"): "symbolic link",
        str(outside / "dangling.jpg"): "symbolic link",
        str(outside / "folder.jpg"): "not a regular file",
        str(outside / "pipe.jpg"): "not a regular file",
        "/dev/null": "not a regular file",
        str(outside / "absent.jpg"): "cannot be read",
    }
    for path, words in refusals.items():
        refused = run("evidence", "add", RMA, path, actor="cs-ann", code=2)
        assert words in refused.stderr, (path, refused.stderr)
        assert path in refused.stderr
    assert len(run.json("evidence", "list", RMA)) == before
    assert not [p for p in _store(site).iterdir() if p.name.startswith(".incoming")]

    # Relative with ../ and absolute: read, and kept under the digest only.
    weird = outside / "..\\..\\etc\\passwd .. <x>.jpg"
    weird.write_bytes(b"a photo with an odd name")
    relative = os.path.relpath(weird, Path.cwd())
    assert relative.startswith("..")
    outside_before = _tree(outside)
    run("evidence", "add", RMA, relative, str(secret), actor="cs-ann")
    names = [e["name"] for e in run.json("evidence", "list", RMA)]
    assert names[-2:] == [weird.name, "secret.txt"]
    assert _tree(outside) == outside_before
    sha = picture.sha256_of(weird)
    assert (_store(site) / sha[:2] / sha).read_bytes() == weird.read_bytes()
    assert all(p.name.isalnum() and len(p.name) == 64 for p in _stored_files(site))


def test_a_link_inside_the_store_is_never_followed(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, site = desk
    photo = tmp_path / "new.jpg"
    photo.write_bytes(b"a second photo of the crack")
    sha = picture.sha256_of(photo)
    outside = tmp_path / "outside"
    outside.mkdir()
    # Its `<sha[:2]>` folder replaced by a link out of the store.
    (_store(site) / sha[:2]).symlink_to(outside, target_is_directory=True)
    refused = run("evidence", "add", RMA, str(photo), actor="cs-ann", code=2)
    assert "is not a folder of the store" in refused.stderr
    assert list(outside.iterdir()) == []
    # A file placed beyond the link, with the right content, does not count as kept.
    (outside / sha).write_bytes(photo.read_bytes())
    assert not picture.intact(_store(site), sha)
    # An `.incoming` name planted as a link is never written through: new names only.
    for index in range(3):
        (_store(site) / f".incoming-planted{index}").symlink_to(outside / f"p{index}")
    (_store(site) / sha[:2]).unlink()
    run("evidence", "add", RMA, str(photo), actor="cs-ann")
    assert (_store(site) / sha[:2] / sha).read_bytes() == photo.read_bytes()
    assert sorted(p.name for p in outside.iterdir()) == [sha]


def test_user_strings_never_become_store_paths(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, site = desk
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"x")
    for rma in ("../../etc", "/etc/passwd", "RMA-2026-000001/../../x"):
        for command in (("add", rma, str(photo)), ("list", rma)):
            refused = run("evidence", *command, actor="cs-ann", code=1)
            assert f"no instance {rma!r}" in refused.stderr
    with _evidence(site) as store:
        for digest in ("../" * 10 + "etc/passwd", "/etc/passwd", "..", "A" * 64, "g" * 64):
            with pytest.raises(EvidenceError, match="is not a SHA-256 digest"):
                store.path(digest)
            assert not picture.intact(_store(site), digest)
        with pytest.raises(EvidenceError, match="is not one of"):
            store.add(RMA, photo, "cs-ann", kind="../../x")
    assert all(len(p.name) == 64 for p in _stored_files(site))


@pytest.mark.parametrize(
    "key", ["../../escaped", "/tmp/escaped", "..", "RMA/../../x", "注文 1", "a\\..\\b"]
)
def test_a_notice_file_stays_in_the_outbox(tmp_path: Path, key: str) -> None:
    outbox = tmp_path / "data" / "outbox"
    written = Path(write_file(outbox, key, 1, "../received", "../en", "Subject", "Body"))
    assert written.resolve().parent.parent == outbox.resolve()
    assert written.read_text(encoding="utf-8") == "Subject\n\nBody"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [written]
    assert all(p.resolve().is_relative_to(outbox.resolve()) for p in outbox.rglob("*"))
    assert file_name(key) != file_name(key + "_")
    assert file_name(RMA) == RMA


def test_orders_import_reads_the_file_named_and_writes_none(
    desk: tuple[Cli, Path], tmp_path: Path
) -> None:
    """`orders import` reads the file the operator names and stores rows in the database;
    its name is only a label. (`report -o`, `audit report -o`, `audit export -o` and
    `audit archive -o` write where the operator says: that is what they are for.)"""
    run, site = desk
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").mkdir()
    before = _tree(site.parent)
    assert (
        "no such file"
        in run("orders", "import", str(folder / "a.csv"), actor="owner", code=2).stderr
    )
    assert (
        "no such file"
        in run("orders", "import", str(folder / "none.csv"), actor="owner", code=2).stderr
    )
    good = folder / "../in/./ordres ../注文.csv"
    good.parent.mkdir(exist_ok=True)
    Path(good).write_text(_csv_order("U-9", title="梅 <b>", artist="林風"), encoding="utf-8")
    run("orders", "import", str(good), actor="owner")
    after = _tree(site.parent)
    changed = {k for k in after if k in before and before[k] != after[k]}
    assert {Path(k).name for k in changed} <= {"desk.db", "desk.db-wal", "desk.db-shm"}
    assert {k for k in after if k not in before} <= {
        "site/desk.db-wal",
        "site/desk.db-shm",
        "in",
        "in/a.csv",
        "in/ordres ..",
        "in/ordres ../注文.csv",
    }
    assert _rows(site, "SELECT title, artist FROM sales_artwork WHERE order_number = 'U-9'") == [
        ("梅 <b>", "林風")
    ]


# == amounts: refused wherever they enter ================================================

NOT_MONEY = [
    ("NaN", "EUR", "not a finite decimal amount"),
    ("nan", "EUR", "not a finite decimal amount"),
    ("sNaN", "EUR", "not a finite decimal amount"),
    ("Infinity", "EUR", "not a finite decimal amount"),
    ("-Infinity", "EUR", "not a finite decimal amount"),
    ("0.001", "EUR", "'0.001' has more decimals than EUR has (2)"),
    ("4.500", "EUR", "'4.500' has more decimals than EUR has (2)"),
    ("1.5", "JPY", "'1.5' has more decimals than JPY has (0)"),
    ("1.0", "JPY", "more decimals than JPY has (0)"),
    ("1e3", "EUR", "'1e3' is not an amount as one is written here"),
    ("1E+2", "EUR", "is not an amount as one is written here"),
    ("+5", "EUR", "is not an amount as one is written here"),
    ("1_000", "EUR", "is not an amount as one is written here"),
    ("١٢٣", "EUR", "is not an amount as one is written here"),
    ("\uff11\uff12", "EUR", "is not an amount as one is written here"),
    (".5", "EUR", "is not an amount as one is written here"),
    ("12.", "EUR", "is not an amount as one is written here"),
    ("1,200.00", "EUR", "'1,200.00' is not an amount"),
    ("12 EUR", "EUR", "is not an amount"),
    ("abc", "EUR", "'abc' is not an amount"),
    ("", "EUR", "'' is not an amount"),
    ("1" * 14, "EUR", "larger than any amount the house handles"),
    ("9" * 5000, "JPY", "larger than any amount the house handles"),
    ("10", "EURO", "unknown currency 'EURO'"),
    ("10", "€", "unknown currency '€'"),
    ("10", "", "unknown currency ''"),
    ("10", "XXX", "unknown currency 'XXX'"),
]


@pytest.mark.parametrize(("amount", "currency", "words"), NOT_MONEY)
def test_text_that_is_not_money_is_refused(amount: str, currency: str, words: str) -> None:
    with pytest.raises(MoneyError, match=None) as caught:
        Money.of(amount, currency)
    assert words in str(caught.value)


@pytest.mark.parametrize("value", [1.5, float("nan"), float("inf"), True, None, [], {}])
def test_values_that_are_not_money_are_refused(value: Any) -> None:
    with pytest.raises(MoneyError):
        Money.of(value, "EUR")
    with pytest.raises(MoneyError):
        Money.from_data({"amount": value, "currency": "EUR"})


def test_plain_amounts_read_as_written() -> None:
    assert Money.of(" 1200.5 ", "eur").as_data() == {"amount": "1200.50", "currency": "EUR"}
    assert Money.of("-0", "EUR").as_data() == {"amount": "0.00", "currency": "EUR"}
    assert Money.of(150, "JPY").as_data() == {"amount": "150", "currency": "JPY"}
    assert Money.of(Decimal("1E+3"), "EUR").amount == Decimal("1000.00")
    assert Money.of("1000000000000", "EUR").minor == 100000000000000


BAD_PRICES = [
    ("NaN", "not a finite decimal amount"),
    ("Infinity", "not a finite decimal amount"),
    ("-5", "must be more than zero"),
    ("0", "must be more than zero"),
    ("0.001", "more decimals than CNY has (2)"),
    ("1e3", "is not an amount as one is written here"),
    ("99999999999999", "larger than any amount"),
    ("abc", "is not an amount"),
]


@pytest.mark.parametrize(("price", "words"), BAD_PRICES)
def test_a_bad_price_in_a_csv_import_is_refused_and_nothing_stored(
    desk: tuple[Cli, Path], tmp_path: Path, price: str, words: str
) -> None:
    run, site = desk
    file = tmp_path / "orders.csv"
    file.write_text(_csv_order("U-2", price=price), encoding="utf-8")
    refused = run("orders", "import", str(file), actor="owner", code=2)
    assert "nothing imported" in refused.stderr
    assert words in refused.stderr
    assert _rows(site, "SELECT count(*) FROM sales_order WHERE order_number = 'U-2'") == [(0,)]


@pytest.mark.parametrize(
    ("shipping_charge", "currency", "words"),
    [
        ("-1", "CNY", "must not be less than zero"),
        ("NaN", "CNY", "not a finite decimal amount"),
        ("1.5", "JPY", "more decimals than JPY has (0)"),
        ("0", "YEN", "unknown currency 'YEN'"),
    ],
)
def test_a_bad_shipping_charge_or_currency_is_refused(
    desk: tuple[Cli, Path], tmp_path: Path, shipping_charge: str, currency: str, words: str
) -> None:
    run, _ = desk
    file = tmp_path / "orders.csv"
    file.write_text(
        _csv_order("U-3", price="1200", shipping=shipping_charge, currency=currency),
        encoding="utf-8",
    )
    refused = run("orders", "import", str(file), actor="owner", code=2)
    assert words in refused.stderr


@pytest.mark.parametrize(
    ("price_json", "words"),
    [
        ("12.5", "amounts are never float"),
        ("NaN", "not JSON (NaN is not a number JSON can hold)"),
        ("1e400", "not JSON (1e400 is too large a number to store)"),
        ("-12", "must be more than zero"),
        ("true", "amounts are never bool"),
        ('"1e3"', "is not an amount as one is written here"),
        ('"12.345"', "more decimals than EUR has (2)"),
        ("10000000000000000000000", "larger than any amount"),
        ('{"amount": "1"}', "is not an amount"),
    ],
)
def test_a_bad_price_in_a_json_import_is_refused(price_json: str, words: str) -> None:
    text = _orders_json().replace('"price": "1200.00"', f'"price": {price_json}')
    assert price_json in text
    with pytest.raises(OrderImportError) as caught:
        validate(parse_file("orders.json", text.encode()))
    assert words in "; ".join(caught.value.problems)


CONFIRM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="confirm_definitions" targetNamespace="https://artreturns.example/tests">
  <bpmn:process id="confirm_amount" name="Confirm an amount" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="confirm" name="Confirm the amount">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="amount" label="Amount" type="amount">
            <camunda:validation><camunda:constraint name="required" /></camunda:validation>
          </camunda:formField>
          <camunda:formField id="note" label="Note" type="string" />
        </camunda:formData>
        <spiffworkflow:variableName>confirmed</spiffworkflow:variableName>
      </bpmn:extensionElements>
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="confirm" />
    <bpmn:sequenceFlow id="f1" sourceRef="confirm" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_an_amount_field_refuses_what_is_not_an_amount(tmp_path: Path) -> None:
    """Through `complete --set` and `--data`: refused before anything changes (exit 1,
    the history as it was); a plain amount is taken as its text."""
    run = Cli(f"sqlite:///{tmp_path / 'forms.db'}")
    run("init")
    diagram = tmp_path / "confirm_amount.bpmn"
    diagram.write_text(CONFIRM, encoding="utf-8")
    run("deploy", str(diagram), actor="owner")
    run("start", "confirm_amount", "--key", "K-1")
    events = len(run.json("history", "K-1"))
    for value in ("NaN", "Infinity", "-5.00", "0.001", "1e3", "+5", "1_000", "abc", "9" * 14):
        refused = run("complete", "K-1:confirm", "--set", f"amount={value}", code=1)
        assert "amount" in refused.stderr
        assert "such as" in refused.stderr, refused.stderr
    for data in ('{"amount": 12.5}', '{"amount": 300}', '{"amount": "NaN"}', '{"amount": null}'):
        run("complete", "K-1:confirm", "--data", data, code=1)
    assert len(run.json("history", "K-1")) == events
    run("complete", "K-1:confirm", "--set", "amount=1200.50", "--set", f"note={NOTE}")
    assert run.json("show", "K-1")["data"]["confirmed"] == {"amount": "1200.50", "note": NOTE}


@pytest.mark.parametrize(
    ("diagram", "field"),
    [("approval.bpmn", "amount"), ("dispute.bpmn", "compensation_amount")],
)
def test_amounts_no_handler_reads_are_checked_by_their_form(diagram: str, field: str) -> None:
    """Finance's confirmed amount and legal's compensation are only recorded: their form
    is what checks them."""
    tree = lxml_html.etree.parse(str(PROCESSES / diagram))
    [declared] = tree.xpath(
        "//camunda:formField[@id=$field]/@type",
        field=field,
        namespaces={"camunda": "http://camunda.org/schema/1.0/bpmn"},
    )
    assert declared == "amount"


def _context(operator: str) -> TaskContext:
    return TaskContext(
        instance_id=1,
        instance_uid="uid-1",
        business_key=RMA,
        process_id="test",
        process_version=1,
        task_id="task-1",
        bpmn_id="step",
        operator=operator,
        idempotency_key="uid-1:task-1",
        attempt=1,
        now=datetime(2026, 11, 2, 9, tzinfo=UTC),
        actor="tester",
        logger=logging.getLogger("test"),
    )


BAD_AMOUNTS = ["NaN", "Infinity", "-1.00", "0.001", "1e3", "abc", "99999999999999"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_handlers_refuse_amounts_that_are_not_money(amount: str) -> None:
    """Each handler that takes an amount from a form, a message or a diagram refuses it
    before anything is paid, booked or recorded (they get no services here: reaching
    the ledger would fail otherwise)."""
    money = {"amount": amount, "currency": "EUR"}
    # Finance's confirmation of a refund (a form field): refused back to finance.
    with pytest.raises(BpmnError) as refused:
        payments.refund(
            {
                "rma": RMA,
                "refund": {"amount": {"amount": "4500.00", "currency": "EUR"}},
                "confirmation": {"amount": money, "channel": "original_payment"},
                "order": {"payer": "Ann"},
                "inspection": {"outcome": "accepted"},
            },
            _context("payments.refund"),
        )
    assert refused.value.code == "confirmation_refused"
    # The customer's payment of an exchange's difference (a message).
    expected = {"amount": "100.00", "currency": "EUR"}
    with pytest.raises(BpmnError) as mismatch:
        payments.record_charge(
            {"rma": RMA, "exchange": {"amount": expected}, "payment": {"amount": money}},
            _context("payments.record_charge"),
        )
    assert mismatch.value.code == "payment_mismatch"
    # A replacement's price (a form field in the exchange).
    with pytest.raises(HandlerInputError, match="replacement's price"):
        exchange.price_difference(
            {
                "artworks": [{"price": {"amount": "900.00", "currency": "EUR"}}],
                "replacement": {"price": money},
            },
            _context("exchange.price_difference"),
        )
    # A work's price in the data the refund is worked out from (a negative one makes a
    # refund below zero, which is refused too).
    with pytest.raises((MoneyError, HandlerInputError)):
        payments.compute_refund(
            {"artworks": [{"price": money}], "order": {"currency": "EUR"}},
            _context("payments.compute_refund"),
        )
    # The value of works shipped back (a diagram's parameter).
    if amount != "-1.00":
        with pytest.raises(MoneyError):
            shipping.instructions(
                {"seller_pays": True, "amount": amount, "currency": "EUR"},
                _context("shipping.instructions"),
            )


# == Unicode: unchanged everywhere, markup only as text ==================================


def _approve(run: Cli) -> None:
    run(
        "complete",
        f"{RMA}:approve_return",
        *("--set", "decision=approve", "--set", f"note={NOTE}"),
        now="2026-11-02T10:00Z",
        actor="cs-bob",
    )


def test_names_come_back_unchanged_from_show_history_and_tasks(desk: tuple[Cli, Path]) -> None:
    run, _ = desk
    tasks = run.json("tasks", "--all", now=NOW)
    assert tasks[0]["summary"] == {"artwork": TITLE, "customer": CUSTOMER}
    rows = list(csv.DictReader(io.StringIO(run("tasks", "--all", "--csv", now=NOW).stdout)))
    assert (rows[0]["artwork"], rows[0]["customer"]) == (TITLE, CUSTOMER)
    _approve(run)
    shown = run.json("show", RMA)
    picture_ = shown["return"]
    assert picture_["customer"]["name"] == CUSTOMER
    assert picture_["customer"]["address"] == ADDRESS
    assert picture_["artworks"][0]["title"] == TITLE
    assert picture_["artworks"][0]["artist"] == ARTIST
    assert picture_["request"]["description"] == DESCRIPTION
    assert [e["name"] for e in picture_["evidence"]] == [PHOTO_NAME]
    assert shown["data"]["cs_approval"]["note"] == NOTE
    events = run.json("history", RMA)
    comments = [e for e in events if e["kind"] == "comment"]
    assert [c["data"]["text"] for c in comments] == [COMMENT]
    [done] = [e for e in events if e["kind"] == "task_completed"]
    assert done["data"]["changed"]["cs_approval"][1]["note"] == NOTE
    story = run("history", RMA).stdout
    for text in (COMMENT, NOTE):
        assert text in story
    history_csv = list(csv.DictReader(io.StringIO(run("history", RMA, "--csv").stdout)))
    assert any(COMMENT in row["what"] for row in history_csv)
    assert any(CUSTOMER.replace('"', '""') in row["what"] or CUSTOMER in row["what"]
               for row in history_csv)  # fmt: skip
    # The combining accent is kept as given, not composed.
    assert "Cafe\u0301" in json.dumps(shown, ensure_ascii=False)
    assert "Café" not in json.dumps(shown, ensure_ascii=False)


def test_report_csv_is_utf8_with_quoting(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, _ = desk
    out = tmp_path / "report.csv"
    run("report", "--format", "csv", "-o", str(out), now=NOW)
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"))))
    groups = {row["group"] for row in rows}
    assert f"artist={ARTIST}" in groups


def _visible_text(page: str) -> str:
    return str(lxml_html.fromstring(page).text_content())


def _assert_inert(page: str) -> None:
    """No markup from the data: only the page's own scripts (none) and no image with a
    handler; the hostile names are there as text."""
    tree = lxml_html.fromstring(page)
    assert tree.xpath("//script") == []
    assert tree.xpath("//img[@onerror]") == []
    assert tree.xpath("//*[@onerror or @onload]") == []
    assert SCRIPT not in page
    assert IMG not in page


def test_html_pages_show_names_as_text_never_markup(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, _ = desk
    _approve(run)
    audit = tmp_path / "audit.html"
    run("audit", "report", RMA, "-o", str(audit), actor="owner")
    page = audit.read_text(encoding="utf-8")
    _assert_inert(page)
    text = _visible_text(page)
    for name in (PHOTO_NAME, COMMENT):
        assert name in text, name
    assert CUSTOMER in text
    assert "&lt;script&gt;" in page

    report = tmp_path / "report.html"
    run("report", "--format", "html", "-o", str(report), now="2026-11-02T10:00Z")
    page = report.read_text(encoding="utf-8")
    _assert_inert(page)
    assert ARTIST in _visible_text(page)


def test_audit_export_keeps_every_character(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, _ = desk
    _approve(run)
    folder = tmp_path / "export"
    run("audit", "export", "-o", str(folder), actor="owner")
    lines = [
        json.loads(line)
        for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    texts = list(_strings(lines))
    for name in (CUSTOMER, TITLE, ARTIST, ADDRESS, DESCRIPTION, COMMENT, NOTE, PHOTO_NAME):
        assert any(name in text for text in texts), name
    run("audit", "verify", "--export", str(folder), actor="owner")


def test_unicode_orders_import_from_csv(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, site = desk
    file = tmp_path / "orders.csv"
    title = 'Mist, "Huangshan" 黄山\n二行目 مرحبا \u202e'
    file.write_text(_csv_order("U-5", title=title, artist=ARTIST), encoding="utf-8")
    run("orders", "import", str(file), actor="owner")
    assert _rows(site, "SELECT title, artist FROM sales_artwork WHERE order_number = 'U-5'") == [
        (title, ARTIST)
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Mist \x1b]0;owned\x07"),
        ("artist", "Lin \x1b[2J"),
        ("customer_name", "Ann \x9b31m"),
        ("customer_address", "nul \x00 byte"),
    ],
)
def test_control_characters_a_terminal_would_obey_are_refused(
    desk: tuple[Cli, Path], tmp_path: Path, field: str, value: str
) -> None:
    """ESC and the other controls would recolour, retitle or clear the terminal of whoever
    runs `show` or `tasks`; tab and line ends are text."""
    run, site = desk
    header, row = _csv_order("U-7").splitlines()
    cells = next(csv.reader([row]))
    cells[header.split(",").index(field)] = value
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    file = tmp_path / "orders.csv"
    file.write_text(f"{header}\n{out.getvalue()}", encoding="utf-8")
    refused = run("orders", "import", str(file), actor="owner", code=2)
    assert "control characters" in refused.stderr
    assert _rows(site, "SELECT count(*) FROM sales_order WHERE order_number = 'U-7'") == [(0,)]
    file.write_text(_csv_order("U-7", title="Two\tparts,\r\nsecond line"), encoding="utf-8")
    run("orders", "import", str(file), actor="owner")


def test_a_description_with_control_characters_is_refused(desk: tuple[Cli, Path]) -> None:
    run, site = desk
    before = _rows(site, "SELECT count(*) FROM rma_number")
    refused = run(
        "apply",
        *("--order", "U-1", "--artwork", "W-1", "--type", "return", "--reason", "no_reason"),
        *("--description", "broken \x1b[31m red"),
        actor="cs-ann",
        code=2,
    )
    assert "control characters" in refused.stderr
    assert _rows(site, "SELECT count(*) FROM rma_number") == before


def test_an_orders_file_that_is_not_utf8_is_refused(desk: tuple[Cli, Path], tmp_path: Path) -> None:
    run, _ = desk
    file = tmp_path / "orders.csv"
    file.write_bytes(_csv_order("U-8", artist="Zoë").encode("latin-1"))
    refused = run("orders", "import", str(file), actor="owner", code=2)
    assert "not UTF-8 text" in refused.stderr


# -- helpers -------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, and in the JSON text it holds (an event's canonical
    form is JSON inside JSON)."""
    if isinstance(value, str):
        yield value
        if value[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                yield from _strings(json.loads(value))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class _evidence:  # noqa: N801 - used as a context manager, like open()
    """The evidence store of a copied site, on its own connection, committed at the end."""

    def __init__(self, site: Path) -> None:
        self.site = site

    def __enter__(self) -> Evidence:
        from sqlalchemy import create_engine

        self.engine = create_engine(f"sqlite:///{self.site / 'desk.db'}")
        self.conn = self.engine.connect()
        self.transaction = self.conn.begin()
        return Evidence(self.conn, datetime(2026, 11, 2, 12, tzinfo=UTC), _store(self.site))

    def __exit__(self, *exc: object) -> None:
        self.transaction.commit()
        self.conn.close()
        self.engine.dispose()
