"""The indicators as one HTML page that needs nothing else (`report --format html`).

The page opens with what needs attention (refunds paid after their legal deadline or
unpaid past it, which must be zero; deadlines missed; categories returned well above the
rest; incidents), then the headline numbers, then a section per part of the indicators
(volume, time, deadlines, quality, customers, money, reasons), each with its charts and
a table of every figure. Charts are inline SVG drawn here (`engine.charts`); the style
is in the page; no script, font or picture is fetched. Everything is escaped
(autoescape, and the charts escape their own text).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from engine.charts import Bar, Part, Stack, hbar, histogram, stacked

if TYPE_CHECKING:
    from engine.indicators import Durations, Indicators, Rate

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "monitoring_report.html.j2"
#: The most groups a bar chart draws (the tables hold them all).
CHART_ROWS = 15
NONE = "-"


def seconds(value: int | None) -> str:
    """A duration for people: 3d 4h, 2h 5m, 40s; "-" for none."""
    if value is None:
        return NONE
    days, rest = divmod(int(value), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {rest % 60}s"
    return f"{rest}s"


def share(rate: Rate) -> str:
    """A rate as people read it: 12.5% (3 of 24); "-" when nothing was counted."""
    value = rate.value
    if value is None:
        return f"{NONE} (0 of 0)"
    percent = (value * 100).quantize(Decimal("0.1"))
    return f"{percent}% ({rate.part} of {rate.whole})"


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}"


@dataclass(frozen=True)
class Alarm:
    """A red item: what it is (a stable key), what it says, the items it names."""

    key: str
    text: str
    items: tuple[str, ...] = ()


def alarms(ind: Indicators) -> list[Alarm]:
    """What is red, the refunds first: they must be zero."""
    found: list[Alarm] = []
    d = ind.deadlines
    if d.paid_late:
        found.append(
            Alarm(
                "refunds_paid_late",
                f"{len(d.paid_late)} refund(s) paid after their legal deadline (must be 0)",
                tuple(
                    f"{r.rma}: due {r.deadline.isoformat()}, paid {_time(r.paid_at)}"
                    for r in d.paid_late
                ),
            )
        )
    if d.unpaid_overdue:
        found.append(
            Alarm(
                "refunds_unpaid_overdue",
                f"{len(d.unpaid_overdue)} refund(s) not paid and past their legal deadline "
                "(must be 0)",
                tuple(f"{r.rma}: due {r.deadline.isoformat()}" for r in d.unpaid_overdue),
            )
        )
    if d.breached.part:
        found.append(
            Alarm(
                "sla_breaches",
                f"{d.breached.part} step(s) finished after their due time or still open past "
                f"it: {share(d.breached)} of the steps with a deadline",
                tuple(
                    f"{s.name} [{s.step}], {s.role}: {s.breached} of {s.with_due}"
                    + (f", {s.open} still open" if s.open else "")
                    for s in sorted(d.steps, key=lambda s: -s.breached)
                    if s.breached
                ),
            )
        )
    flagged = ind.reasons.flagged
    if flagged:
        found.append(
            Alarm(
                "flagged_categories",
                f"{len(flagged)} {'category' if len(flagged) == 1 else 'categories'} "
                f"returned well above the rest ({ind.reasons.rule})",
                tuple(
                    f"{f.category}: {share(f.rate)}, all categories {share(f.overall)}"
                    for f in flagged
                ),
            )
        )
    if ind.quality.open_incidents:
        found.append(
            Alarm(
                "incidents",
                f"{ind.quality.open_incidents} service task(s) failed for good and still open "
                "(`artreturns incidents`)",
            )
        )
    return found


def _durations_bar(label: str, d: Durations) -> Bar:
    return Bar(label, float(d.median or 0), seconds(d.median))


def charts(ind: Indicators) -> dict[str, Markup]:
    """Every chart of the page, by the section that shows it."""
    v, t, d, q, c = ind.volume, ind.time, ind.deadlines, ind.quality, ind.customers
    drawn: dict[str, Markup] = {}
    drawn["opened"] = hbar(
        "opened",
        f"Returns opened by {v.dimension}",
        f"How many returns were opened in the window, per {v.dimension}, largest first.",
        [
            Bar(g.group, g.opened, str(g.opened))
            for g in sorted(v.by_group, key=lambda g: -g.opened)[:CHART_ROWS]
        ],
    )
    category_rates = [r for r in v.return_rates if r.dimension == "category"]
    if category_rates:
        drawn["return_rate"] = hbar(
            "return-rate",
            "Return rate by category",
            "Returns per work sold on the orders loaded, for each category.",
            [
                Bar(r.group, float(r.rate.value or 0), share(r.rate))
                for r in sorted(category_rates, key=lambda r: -(r.rate.value or 0))[:CHART_ROWS]
            ],
        )
    drawn["end_to_end"] = hbar(
        "end-to-end",
        f"Median processing time by {v.dimension}",
        f"Start to completion, median over the completed returns of each {v.dimension}.",
        [_durations_bar(g.group, g.end_to_end) for g in v.by_group if g.end_to_end.count][
            :CHART_ROWS
        ],
    )
    slowest = sorted(t.steps, key=lambda s: -(s.total.mean or 0))[:CHART_ROWS]
    drawn["steps"] = stacked(
        "step-time",
        "Time per step: waiting and working",
        "Mean time a step's task waited for someone to take it, then was worked on, "
        "slowest steps first.",
        ["waiting", "working"],
        [
            Stack(
                f"{s.name} ({s.role})",
                [
                    Part(float(s.waiting.mean or 0), seconds(s.waiting.mean)),
                    Part(float(s.working.mean or 0), seconds(s.working.mean)),
                ],
            )
            for s in slowest
        ],
    )
    drawn["roles"] = stacked(
        "role-time",
        "Time per role: waiting and working",
        "Mean time a role's tasks waited, then were worked on.",
        ["waiting", "working"],
        [
            Stack(
                r.role,
                [
                    Part(float(r.waiting.mean or 0), seconds(r.waiting.mean)),
                    Part(float(r.working.mean or 0), seconds(r.working.mean)),
                ],
            )
            for r in t.roles
        ],
    )
    drawn["breaches"] = hbar(
        "breaches",
        "Deadlines missed by step",
        "Tasks that ended after their due time or are still open past it, per step.",
        [
            Bar(f"{s.name} ({s.role})", s.breached, f"{s.breached} of {s.with_due}")
            for s in sorted(d.steps, key=lambda s: -s.breached)[:CHART_ROWS]
        ],
    )
    drawn["inspections"] = hbar(
        "inspections",
        "Inspection outcomes",
        "How many returns' inspection came to each outcome.",
        [Bar(x.key, x.count, str(x.count)) for x in q.inspections],
    )
    drawn["scores"] = histogram(
        "scores",
        "Satisfaction scores",
        f"How many customers gave each score; mean {c.mean if c.mean is not None else NONE}.",
        [Bar(k, n, str(n)) for k, n in _score_bins({s.key: s.count for s in c.scores})],
    )
    reasons: Counter[str] = Counter()
    for rc in ind.reasons.counts:
        reasons[rc.reason] += rc.count
    drawn["reasons"] = hbar(
        "reasons",
        "Return reasons",
        "How many returns gave each reason, all categories and channels together.",
        [Bar(k, n, str(n)) for k, n in reasons.most_common(CHART_ROWS)],
    )
    return drawn


def _score_bins(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Every score from the lowest given to the highest, none left out (a score nobody
    gave is a bin of 0); scores that are not whole numbers after them, as given."""
    numbers = sorted(int(k) for k in counts if k.lstrip("-").isdigit())
    others = sorted(k for k in counts if not k.lstrip("-").isdigit())
    whole = range(numbers[0], numbers[-1] + 1) if numbers else range(0)
    return [(str(n), counts.get(str(n), 0)) for n in whole] + [(k, counts[k]) for k in others]


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["time"] = _time
_ENV.filters["seconds"] = seconds
_ENV.filters["share"] = share
_ENV.filters["amount"] = _amount


def render(indicators: Indicators, *, made_at: datetime | None = None) -> str:
    """The page, as HTML text."""
    context: dict[str, Any] = {
        "ind": indicators,
        "alarms": alarms(indicators),
        "charts": charts(indicators),
        "made_at": made_at or indicators.window.now,
        "none": NONE,
    }
    return _ENV.get_template(TEMPLATE).render(**context)


__all__ = ["Alarm", "alarms", "charts", "render", "seconds", "share"]
