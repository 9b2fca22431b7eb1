"""`artreturns audit report`: a return's page, written where asked, with its path drawn
from the deployed diagram, its timeline, evidence, notices and the chain's verdict; no
resource fetched from the network, every value escaped."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pytest
from lxml import etree, html
from test_cli import ENV_VARS, Cli

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "docs" / "demo" / "orders.csv"
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def a_return(tmp_path: Path) -> tuple[Cli, str]:
    """A return approved, shipped back and received: it waits for its inspection."""
    cli = Cli(f"sqlite:///{tmp_path / 'report.db'}")
    cli("init")
    cli("deploy", str(ROOT / "processes"))
    cli("orders", "import", str(ORDERS))
    photo = tmp_path / "crate.jpg"
    photo.write_bytes(b"\xff\xd8\xff a photo of the crate")
    applied = cli.json(
        "apply",
        "--order",
        "D-2001",
        "--artwork",
        "W-101",
        "--type",
        "return",
        "--reason",
        "no_reason",
        "--description",
        "退货 — 変更 — שינוי דעה",
        "--evidence",
        str(photo),
        actor="安娜",
        now="2026-11-02T09:00:00Z",
    )
    rma = str(applied["instance"]["business_key"])
    cli(
        "complete",
        f"{rma}:approve_return",
        "--data",
        json.dumps({"decision": "approve", "note": HOSTILE}),
        actor=HOSTILE,
        now="2026-11-02T10:00:00Z",
    )
    cli(
        "message",
        rma,
        "return_shipped",
        "--data",
        '{"carrier": "SF Express", "tracking_number": "SF2001000001"}',
        now="2026-11-03T09:00:00Z",
    )
    cli("message", rma, "return_received", now="2026-11-05T09:00:00Z")
    return cli, rma


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str, Path]:
    tmp_path = tmp_path_factory.mktemp("report")
    cli, rma = a_return(tmp_path)
    out = tmp_path / "page.html"
    done = cli("audit", "report", rma, "-o", str(out))
    assert done.stdout.strip() == str(out)
    return cli, rma, out


def _states(page: str) -> dict[tuple[str, str], str]:
    """(process, element) -> data-state of every element drawn with one."""
    tree = html.fromstring(page)
    found = {}
    for section in tree.iter("section"):
        for group in section.iter("g", f"{SVG}g"):
            if group.get("data-state"):
                found[(section.get("data-process"), group.get("data-element"))] = group.get(
                    "data-state"
                )
    return found


def test_the_path_is_drawn_on_the_deployed_diagrams(made: tuple[Cli, str, Path]) -> None:
    _cli, _rma, out = made
    page = out.read_text(encoding="utf-8")
    states = _states(page)
    # the top level: the service tasks it ran, the call it is inside, a branch it skipped
    assert states[("return_request", "open_rma")] == "done"
    assert states[("return_request", "approve")] == "done"
    assert states[("return_request", "inspect")] == "current"
    assert states[("return_request", "refund")] == "not-taken"
    assert states[("return_request", "to_open_rma")] == "done"  # a flow between done steps
    # the called processes it entered, drawn below with their own paths
    assert states[("approval", "approve_return")] == "done"
    assert states[("inspection", "inspect_work")] == "current"
    sections = re.findall(r'<section class="process" data-process="(\w+)"', page)
    assert sections[0] == "return_request"
    assert {"approval", "return_shipping", "inspection"} <= set(sections)
    assert "refund" not in sections  # never entered
    assert 'class="done"' in page
    assert 'class="current"' in page
    assert 'class="not-taken"' in page


def test_the_page_has_the_timeline_evidence_notices_and_verdict(
    made: tuple[Cli, str, Path], tmp_path: Path
) -> None:
    cli, rma, out = made
    page = out.read_text(encoding="utf-8")
    tree = html.fromstring(page)
    history = cli.json("history", rma)
    rows = tree.get_element_by_id("timeline").findall(".//tr[@data-seq]")
    assert [int(r.get("data-seq")) for r in rows] == [e["seq"] for e in history]
    assert "安娜" in page
    assert "退货 — 変更 — שינוי דעה" in page  # Chinese, Japanese, Hebrew as written
    assert "decision" in rows[5].text_content()  # the approval: what it changed
    sha = hashlib.sha256(b"\xff\xd8\xff a photo of the crate").hexdigest()
    assert sha in tree.get_element_by_id("evidence").text_content()
    sent = [n["notice"] for n in cli.json("notices", "list", rma)]
    assert sent[:2] == ["received", "approved"]
    shown = tree.get_element_by_id("notices").findall(".//tr")[1:]
    assert [row.findall("td")[1].text for row in shown] == sent
    assert tree.get_element_by_id("verification").find(".//span").get("data-verified") == ("intact")
    assert history[-1]["hash"] in page  # the chain head
    replay = tree.get_element_by_id("replay")
    assert replay.find(".//span").get("data-replay") == "clean"
    assert f"rebuilt from its {len(history)} events alone" in " ".join(
        replay.text_content().split()
    )


def test_a_broken_chain_is_reported(tmp_path: Path) -> None:
    cli, rma = a_return(tmp_path)
    with sqlite3.connect(cli.db.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE event SET actor = 'mallory' WHERE seq = 3")
    out = tmp_path / "broken.html"
    cli("audit", "report", rma, "-o", str(out))
    verdict = html.fromstring(out.read_text(encoding="utf-8")).get_element_by_id("verification")
    assert verdict.find(".//span").get("data-verified") == "broken"
    assert "BROKEN at event 3" in verdict.text_content()
    replay = html.fromstring(out.read_text(encoding="utf-8")).get_element_by_id("replay")
    assert replay.find(".//span").get("data-replay") == "diverged"
    assert "the hash chain is broken at event 3" in replay.text_content()


def test_nothing_is_fetched_and_everything_is_escaped(made: tuple[Cli, str, Path]) -> None:
    _cli, _rma, out = made
    page = out.read_text(encoding="utf-8")
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the actor, shown as text
    tree = html.fromstring(page)
    assert not list(tree.iter("script"))
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        for name in ("src", "href", "xlink:href", "{http://www.w3.org/1999/xlink}href"):
            value = element.get(name)
            assert value is None or not re.match(r"\s*(https?:)?//", value), (element.tag, value)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "@import" not in page
    assert not list(tree.iter("link"))
    # the SVG is well formed on its own: a browser could not misread it
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        etree.fromstring(svg.encode("utf-8"))


def test_the_default_file_is_named_after_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, rma = a_return(tmp_path)
    monkeypatch.chdir(tmp_path)
    done = cli("audit", "report", rma)
    assert done.stdout.strip() == f"audit-{rma}.html"
    assert (
        (tmp_path / f"audit-{rma}.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    )


def test_an_unknown_instance_is_an_error(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'empty.db'}")
    cli("init")
    refused = cli("audit", "report", "RMA-404", "-o", str(tmp_path / "x.html"), code=1)
    assert "no instance 'RMA-404'" in refused.stderr
    assert not (tmp_path / "x.html").exists()
