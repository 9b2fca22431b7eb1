"""The monitoring report as a browser shows it: the indicators of a few returns, drawn
as one self-contained page, opened in headless Chromium offline; its charts are there
with the numbers drawn, what is red comes first, a hostile name is only text, and a
screenshot of it is a real picture.

Chromium comes from `make test` (the `chromium` target); without it the browser test
skips with a reason, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from lxml import html
from test_audit_report import PNG, browser, run_chromium

from engine import indicators as ind
from engine.report_html import alarms, render, seconds, share

__all__ = ["browser"]  # the fixture, imported for the tests below

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script><img src="http://evil.example/x.png">'


def durations(*values: int) -> ind.Durations:
    return ind.durations(values)


def sample(*, late: bool = True) -> ind.Indicators:
    """Twelve returns over three categories (one of them named by an attacker), two
    steps, one refund paid late when `late`."""
    paid_late = (
        (ind.LateRefund("RMA-2026-000007", date(2026, 11, 20), datetime(2026, 11, 24, tzinfo=UTC)),)
        if late
        else ()
    )
    return ind.Indicators(
        window=ind.Window(None, None, NOW, None, "return_request"),
        volume=ind.Volume(
            opened=12,
            closed=9,
            declined=2,
            lapsed=1,
            in_flight=3,
            dimension="category",
            by_group=(
                ind.GroupVolume("painting", 6, 5, 1, 1, durations(86400, 172800, 259200)),
                ind.GroupVolume("sculpture", 2, 2, 0, 0, durations(90000)),
                ind.GroupVolume(HOSTILE, 4, 2, 1, 2, durations(400000)),
            ),
            orders_loaded=True,
            return_rates=(
                ind.ReturnRate("category", "painting", ind.Rate(6, 60)),
                ind.ReturnRate("category", "sculpture", ind.Rate(2, 40)),
                ind.ReturnRate("category", HOSTILE, ind.Rate(4, 8)),
            ),
        ),
        time=ind.Time(
            end_to_end=durations(86400, 90000, 172800, 259200, 400000),
            steps=(
                ind.StepTime(
                    "approve_return",
                    "Approve the return",
                    "customer_service",
                    durations(3600, 7200),
                    durations(600, 1200),
                    durations(4200, 8400),
                ),
                ind.StepTime(
                    "inspect_work",
                    "Inspect the work",
                    "inspector",
                    durations(86400),
                    durations(7200),
                    durations(93600),
                ),
            ),
            roles=(
                ind.RoleTime(
                    "customer_service",
                    durations(3600, 7200),
                    durations(600, 1200),
                    durations(4200, 8400),
                ),
                ind.RoleTime("inspector", durations(86400), durations(7200), durations(93600)),
            ),
            bottlenecks=("inspect_work", "approve_return"),
        ),
        deadlines=ind.Deadlines(
            steps=(
                ind.StepDeadlines(
                    "approve_return", "Approve the return", "customer_service", 12, 3, 1, 2
                ),
                ind.StepDeadlines("inspect_work", "Inspect the work", "inspector", 5, 0, 0, 0),
            ),
            roles=(
                ind.RoleDeadlines("customer_service", 12, 3, 1, 2),
                ind.RoleDeadlines("inspector", 5, 0, 0, 0),
            ),
            breached=ind.Rate(3, 17),
            escalated=2,
            refunds_due=6,
            paid_late=paid_late,
            unpaid_overdue=(),
        ),
        quality=ind.Quality(
            inspections=(ind.Count("as_described", 4), ind.Count("damaged", 1)),
            disputes=(ind.Count("upheld", 1),),
            error_rate=ind.Rate(2, 40),
            open_incidents=1,
            returns_with_failures=2,
            steps=(ind.StepErrors("refund", "Refund the customer", 10, 2, 1),),
        ),
        customers=ind.Customers(
            responses=ind.Rate(5, 8),
            scores=(ind.Count("2", 1), ind.Count("4", 2), ind.Count("5", 2)),
            mean=Decimal("4.00"),
            by_group=(ind.GroupScore("painting", ind.Rate(4, 5), Decimal("4.25")),),
        ),
        money=(
            ind.MoneyLine("refunded", ind.Amount(Decimal("162000.00"), "CNY"), 5),
            ind.MoneyLine("restocking_fees", ind.Amount(Decimal("1200.50"), "EUR"), 1),
        ),
        reasons=ind.Reasons(
            counts=(
                ind.ReasonCount("damaged", "painting", "online_shop", 4),
                ind.ReasonCount("no_reason", "painting", "store", 2),
                ind.ReasonCount("damaged", HOSTILE, "online_shop", 4),
            ),
            flagged=(ind.Flag(HOSTILE, ind.Rate(4, 8), ind.Rate(12, 108)),),
        ),
    )


def test_people_read_durations_and_shares() -> None:
    assert [seconds(s) for s in (None, 40, 125, 7500, 93600)] == [
        "-",
        "40s",
        "2m 5s",
        "2h 5m",
        "1d 2h",
    ]
    assert share(ind.Rate(3, 17)) == "17.6% (3 of 17)"
    assert share(ind.Rate(0, 0)) == "- (0 of 0)"


def test_the_red_items_come_first_refunds_before_all() -> None:
    found = alarms(sample())
    assert [a.key for a in found] == [
        "refunds_paid_late",
        "sla_breaches",
        "flagged_categories",
        "incidents",
    ]
    assert found[0].items == ("RMA-2026-000007: due 2026-11-20, paid 2026-11-24 00:00 UTC",)
    assert "must be 0" in found[0].text
    assert next(a.key for a in alarms(sample(late=False))) == "sla_breaches"


def test_the_page_is_self_contained_and_escapes_what_it_shows() -> None:
    page = render(sample())
    tree = html.fromstring(page)
    # Nothing fetched: no script, no link, no picture, no URL but the SVG namespace's.
    assert tree.xpath("//script | //link | //img | //iframe | //object | //embed") == []
    fetched = [
        (element.tag, name, value)
        for element in tree.iter()
        for name, value in element.attrib.items()
        if name != "xmlns" and re.search(r"(?i)^\s*(https?:|//|data:|file:)|url\((?!#)", value)
    ]
    assert fetched == []
    style = "".join(tree.xpath("//style/text()"))
    assert "@import" not in style
    assert "url(" not in style
    # The only other address is the hostile name's, written out as text.
    rest = page.replace("http://www.w3.org/2000/svg", "")
    assert rest.count("//") == rest.count("http://evil.example/x.png&#34;&gt;")
    # The hostile category is text everywhere: in the tables, the alarms and the charts.
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(" in page
    assert HOSTILE in tree.get_element_by_id("flagged").text_content()
    charted = [g.get("data-label") for g in tree.iter(f"{SVG}g", "g") if g.get("data-label")]
    assert HOSTILE in charted


def test_a_clean_window_says_so() -> None:
    quiet = sample(late=False)
    tree = html.fromstring(render(quiet))
    refunds = tree.get_element_by_id("refunds-late")
    assert refunds.get("data-paid-late") == "0"
    assert "both must be 0: they are" in " ".join(refunds.text_content().split())


def test_chromium_draws_the_charts_and_the_red_items_first(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "monitoring.html"
    page.write_text(render(sample()), encoding="utf-8")
    dom = run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", page.as_uri()).stdout
    tree = html.fromstring(dom)
    charts = {svg.get("id"): svg for svg in tree.iter(f"{SVG}svg", "svg")}
    assert {svg.get("data-chart") for svg in charts.values()} == {"hbar", "histogram", "stacked"}
    for svg in charts.values():  # each says what it shows, in words
        assert svg.get("role") == "img"
        assert svg.find(f"{SVG}title") is not None or svg.find("title") is not None

    def drawn(chart: str) -> dict[str, str]:
        return {
            g.get("data-label"): g.get("data-value")
            for g in charts[f"chart-{chart}"].iter(f"{SVG}g", "g")
            if g.get("data-label") is not None
        }

    assert drawn("opened") == {"painting": "6", HOSTILE: "4", "sculpture": "2"}
    assert drawn("scores") == {"2": "1", "3": "0", "4": "2", "5": "2"}  # 3: nobody
    assert drawn("step-time") == {
        "Inspect the work (inspector)": "93600",
        "Approve the return (customer_service)": "6300",
    }
    assert "waiting 1d 0h + working 2h 0m" in charts["chart-step-time"].text_content()
    # Red first: the alarms come before the headline numbers and every section.
    order = [e.get("id") for e in tree.iter() if e.get("id") in ("alarms", "headline", "volume")]
    assert order == ["alarms", "headline", "volume"]
    first = tree.get_element_by_id("alarms").xpath(".//li[@data-alarm]")[0]
    assert first.get("data-alarm") == "refunds_paid_late"

    shot = tmp_path / "monitoring.png"
    run_chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", page.as_uri())
    picture = shot.read_bytes()
    assert picture.startswith(PNG)
    assert len(picture) > 30_000  # tables and charts, not a blank page
