"""Small charts drawn as inline SVG on the server, for pages that fetch nothing.

Three shapes serve the monitoring report: a horizontal bar chart (a count or a share per
group), a histogram (how many fall in each bin, bins in order) and a stacked bar chart
(waiting and working time per step). Each chart is one `<svg role="img">` with a
`<title>` and a `<desc>` that say what it shows, every value written out beside its bar,
and no meaning carried by colour alone: the stacked parts are told apart by a pattern and
named in a legend and in each bar's text. Every text and attribute is escaped.

Each chart and each bar carry data attributes (`data-chart`, `data-label`,
`data-value`) so that a test, or a reader of the page source, finds the numbers drawn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
ROW = 24
LABEL_WIDTH = 230
VALUE_ROOM = 150  # room right of the longest bar for its value
LABEL_CHARS = 34
BAR = "#3b6ea5"
SECOND = "#f0a23b"
TEXT = "#22242a"
FONT = 'font-family="Arial, Helvetica, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value (what its length is drawn from) and the value as
    people read it (3d 4h, 12%, 7)."""

    label: str
    value: float
    text: str


@dataclass(frozen=True)
class Part:
    """One part of a stacked bar."""

    value: float
    text: str


@dataclass(frozen=True)
class Stack:
    """A stacked bar: its label and its parts, in the order of the chart's part names."""

    label: str
    parts: Sequence[Part]


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _open(kind: str, key: str, title: str, desc: str, height: int, width: int = WIDTH) -> str:
    slug = _slug(key)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'data-chart="{kind}" id="chart-{slug}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" '
        f'aria-labelledby="chart-{slug}-title chart-{slug}-desc" {FONT}>'
        f'<title id="chart-{slug}-title">{escape(title)}</title>'
        f'<desc id="chart-{slug}-desc">{escape(desc)}</desc>'
    )


def _empty(kind: str, key: str, title: str, desc: str) -> Markup:
    svg = _open(kind, key, title, desc, ROW + 8)
    svg += f'<text x="4" y="{ROW - 6}" fill="{TEXT}">Nothing to draw: no values.</text></svg>'
    return Markup(svg)  # noqa: S704 - every text above is escaped


def _label(y: float, label: str) -> str:
    return (
        f'<text x="{LABEL_WIDTH - 6}" y="{y:.1f}" text-anchor="end" fill="{TEXT}">'
        f"{escape(_short(label))}</text>"
    )


def hbar(key: str, title: str, desc: str, bars: Sequence[Bar]) -> Markup:
    """A horizontal bar per group, longest scale at the largest value, each value
    written after its bar."""
    if not bars:
        return _empty("hbar", key, title, desc)
    height = len(bars) * ROW + 8
    top = max((b.value for b in bars), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_ROOM
    svg = _open("hbar", key, title, desc, height)
    for i, bar in enumerate(bars):
        y = 4 + i * ROW
        length = max(0.0, bar.value) / top * span
        svg += (
            f'<g class="bar" data-label="{escape(bar.label)}" data-value="{bar.value:g}">'
            f"<title>{escape(bar.label)}: {escape(bar.text)}</title>"
            f"{_label(y + ROW / 2 + 4, bar.label)}"
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" height="{ROW - 6}" '
            f'fill="{BAR}"/>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + ROW / 2 + 4:.1f}" '
            f'fill="{TEXT}">{escape(bar.text)}</text></g>'
        )
    return Markup(svg + "</svg>")  # noqa: S704 - every text above is escaped


def histogram(key: str, title: str, desc: str, bins: Sequence[Bar]) -> Markup:
    """A vertical bar per bin, bins left to right in the order given, the count above
    each bar and the bin's label below it."""
    if not bins:
        return _empty("histogram", key, title, desc)
    plot, base, left = 160, 190, 40
    height = base + 30
    width = max(320, left + len(bins) * 64 + 20)
    step = (width - left - 20) / len(bins)
    top = max(b.value for b in bins) or 1
    svg = _open("histogram", key, title, desc, height, width)
    svg += (
        f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="{TEXT}" '
        'stroke-width="1"/>'
    )
    for i, b in enumerate(bins):
        x = left + i * step
        tall = max(0.0, b.value) / top * plot
        middle = x + step / 2
        svg += (
            f'<g class="bin" data-label="{escape(b.label)}" data-value="{b.value:g}">'
            f"<title>{escape(b.label)}: {escape(b.text)}</title>"
            f'<rect x="{x + 6:.1f}" y="{base - tall:.1f}" width="{step - 12:.1f}" '
            f'height="{tall:.1f}" fill="{BAR}"/>'
            f'<text x="{middle:.1f}" y="{base - tall - 4:.1f}" text-anchor="middle" '
            f'fill="{TEXT}">{escape(b.text)}</text>'
            f'<text x="{middle:.1f}" y="{base + 16}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(_short(b.label))}</text></g>"
        )
    return Markup(svg + "</svg>")  # noqa: S704 - every text above is escaped


def stacked(
    key: str, title: str, desc: str, names: Sequence[str], stacks: Sequence[Stack]
) -> Markup:
    """A horizontal bar per row made of parts (two: the first solid, the second
    hatched), a legend naming them, and each row's parts written out after it."""
    if not stacks:
        return _empty("stacked", key, title, desc)
    slug = _slug(key)
    legend = 26
    height = legend + len(stacks) * ROW + 8
    span = WIDTH - LABEL_WIDTH - VALUE_ROOM - 80
    top = max(sum(max(0.0, p.value) for p in s.parts) for s in stacks) or 1
    fills = [BAR, f"url(#hatch-{slug})"]
    svg = _open("stacked", key, title, desc, height)
    svg += (
        f'<defs><pattern id="hatch-{slug}" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="{SECOND}"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{TEXT}" stroke-width="1.5"/>'
        "</pattern></defs>"
    )
    x = LABEL_WIDTH
    for i, name in enumerate(names):
        svg += (
            f'<g class="legend" data-part="{escape(name)}">'
            f'<rect x="{x}" y="4" width="14" height="14" fill="{fills[i % 2]}" '
            f'stroke="{TEXT}" stroke-width="0.5"/>'
            f'<text x="{x + 20}" y="16" fill="{TEXT}">{escape(name)}</text></g>'
        )
        x += 30 + 8 * len(name)
    for row, stack in enumerate(stacks):
        y = legend + row * ROW
        total = sum(max(0.0, p.value) for p in stack.parts)
        words = " + ".join(
            f"{name} {part.text}" for name, part in zip(names, stack.parts, strict=False)
        )
        svg += (
            f'<g class="stack" data-label="{escape(stack.label)}" data-value="{total:g}">'
            f"<title>{escape(stack.label)}: {escape(words)}</title>"
            f"{_label(y + ROW / 2 + 4, stack.label)}"
        )
        at = float(LABEL_WIDTH)
        for i, (name, part) in enumerate(zip(names, stack.parts, strict=False)):
            length = max(0.0, part.value) / top * span
            svg += (
                f'<rect class="part" data-part="{escape(name)}" data-value="{part.value:g}" '
                f'x="{at:.1f}" y="{y + 3}" width="{length:.1f}" height="{ROW - 6}" '
                f'fill="{fills[i % 2]}" stroke="{TEXT}" stroke-width="0.5"/>'
            )
            at += length
        svg += (
            f'<text x="{at + 6:.1f}" y="{y + ROW / 2 + 4:.1f}" fill="{TEXT}">'
            f"{escape(words)}</text></g>"
        )
    return Markup(svg + "</svg>")  # noqa: S704 - every text above is escaped


__all__ = ["Bar", "Part", "Stack", "hbar", "histogram", "stacked"]
