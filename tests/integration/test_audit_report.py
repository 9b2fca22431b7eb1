"""The audit report as a browser shows it: a real return's page opened in headless
Chromium, offline, renders its diagrams with the path highlighted, and a screenshot of
it is a real picture.

Chromium comes from `make test` (the `chromium` target installs Debian's package when it
is missing and we are root). Without it the test skips with a reason, except in CI
(CI=true), where it fails: there the browser is part of the set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import html
from support import PROCESSES, T0

from engine import Engine, FixedClock
from handlers import desk
from handlers.store import Folders, services_factory

ORDERS = PROCESSES.parent / "docs" / "demo" / "orders.csv"
SVG_G = "{http://www.w3.org/2000/svg}g"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser() -> str:
    """Chromium's path; asked for first, so that a missing browser skips before the set-up."""
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is not installed: `make chromium` installs it (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    return found


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1400,2000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """The report of a return approved, shipped back and received (now being inspected)."""
    folders = Folders(tmp_path / "data")
    engine = Engine(
        f"sqlite:///{tmp_path / 'r.db'}", clock=FixedClock(T0), services=services_factory(folders)
    )
    engine.init()
    engine.deploy(sorted(PROCESSES.glob("*.bpmn")) + sorted(PROCESSES.glob("*.dmn")), "owner")
    desk.import_orders(engine, folders, ORDERS, actor="owner")
    started = desk.apply(
        engine,
        folders,
        order_number="D-2001",
        artwork_ids=["W-101"],
        request_type="return",
        reason="no_reason",
        description="改变主意了 / 気が変わりました",
        actor="cs-ann",
    )
    rma = started.instance.business_key
    assert rma is not None
    engine.complete(f"{rma}:approve_return", {"decision": "approve", "note": "ok"}, actor="bob")
    shipped = {"carrier": "SF Express", "tracking_number": "SF2001000001"}
    engine.message(rma, "return_shipped", shipped, actor="leo")
    engine.message(rma, "return_received", actor="leo")
    picture = desk.picture(engine, folders, rma, {}) or {}
    text = engine.audit_report(
        rma, actor="auditor", evidence=picture["evidence"], notices=picture["notices"]
    )
    engine.db.dispose()
    out = tmp_path / "report.html"
    out.write_text(text, encoding="utf-8")
    return out


def test_chromium_renders_the_report_with_the_path_highlighted(
    browser: str, page: Path, tmp_path: Path
) -> None:
    dom = run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", page.as_uri()).stdout
    tree = html.fromstring(dom)
    states = {
        (section.get("data-process"), g.get("data-element")): (g.get("class"), g.get("data-state"))
        for section in tree.iter("section")
        for g in section.iter("g", SVG_G)
        if g.get("data-state")
    }
    assert states[("return_request", "open_rma")] == ("done", "done")
    assert states[("return_request", "inspect")] == ("current", "current")
    assert states[("inspection", "inspect_work")] == ("current", "current")
    assert states[("return_request", "refund")] == ("not-taken", "not-taken")
    assert "改变主意了 / 気が変わりました" in dom
    assert tree.get_element_by_id("verification").text_content().split()[0] == "intact:"

    shot = tmp_path / "report.png"
    run_chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", page.as_uri())
    picture = shot.read_bytes()
    assert picture.startswith(PNG)
    assert len(picture) > 30_000  # a page with diagrams and tables, not a blank
