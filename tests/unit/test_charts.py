"""The SVG charts: well-formed, every value written out, every text escaped, nothing
fetched, and the parts of a stacked bar told apart by more than colour."""

from __future__ import annotations

from lxml import etree

from engine.charts import Bar, Part, Stack, hbar, histogram, stacked

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>&amp;"'


def parsed(markup: str) -> etree._Element:
    return etree.fromstring(markup.encode("utf-8"))  # well-formed XML, or this raises


def test_a_bar_chart_draws_each_value_and_says_what_it_shows() -> None:
    svg = parsed(hbar("k", "Returns", "Per category.", [Bar("a", 6, "6"), Bar("b", 3, "3")]))
    assert (svg.get("role"), svg.get("data-chart")) == ("img", "hbar")
    assert svg.findtext(f"{SVG}title") == "Returns"
    assert svg.findtext(f"{SVG}desc") == "Per category."
    assert svg.get("aria-labelledby") == "chart-k-title chart-k-desc"
    bars = [(g.get("data-label"), g.get("data-value")) for g in svg.iter(f"{SVG}g")]
    assert bars == [("a", "6"), ("b", "3")]
    widths = [float(r.get("width")) for r in svg.iter(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1]
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["a", "6", "b", "3"]


def test_text_is_escaped_and_nothing_is_fetched() -> None:
    markup = hbar("x", HOSTILE, HOSTILE, [Bar(HOSTILE, 1, HOSTILE)])
    assert "<script" not in markup
    svg = parsed(markup)
    assert svg.findtext(f"{SVG}title") == HOSTILE
    assert next(svg.iter(f"{SVG}g")).get("data-label") == HOSTILE
    assert "href" not in markup
    assert "url(" not in markup


def test_a_histogram_keeps_its_bins_in_order_with_the_counts_above() -> None:
    bins = [Bar("1", 0, "0"), Bar("2", 4, "4"), Bar("3", 2, "2")]
    svg = parsed(histogram("h", "Scores", "How many gave each.", bins))
    assert svg.get("data-chart") == "histogram"
    drawn = [(g.get("data-label"), g.get("data-value")) for g in svg.iter(f"{SVG}g")]
    assert drawn == [("1", "0"), ("2", "4"), ("3", "2")]
    heights = [float(r.get("height")) for r in svg.iter(f"{SVG}rect")]
    assert heights == [0.0, 160.0, 80.0]


def test_a_stacked_bar_names_its_parts_in_a_legend_and_in_words() -> None:
    rows = [
        Stack("Approve", [Part(3600, "1h 0m"), Part(600, "10m 0s")]),
        Stack("Inspect", [Part(86400, "1d 0h"), Part(0, "0s")]),
    ]
    markup = stacked("s", "Time", "Waiting then working.", ["waiting", "working"], rows)
    svg = parsed(markup)
    legend = [g.get("data-part") for g in svg.iter(f"{SVG}g") if g.get("class") == "legend"]
    assert legend == ["waiting", "working"]
    fills = {
        r.get("data-part"): r.get("fill") for r in svg.iter(f"{SVG}rect") if r.get("data-part")
    }
    assert fills == {"waiting": "#3b6ea5", "working": "url(#hatch-s)"}  # a pattern, not a hue
    stacks = {g.get("data-label"): g for g in svg.iter(f"{SVG}g") if g.get("class") == "stack"}
    assert stacks["Approve"].get("data-value") == "4200"
    assert "waiting 1h 0m + working 10m 0s" in "".join(stacks["Approve"].itertext())


def test_an_empty_chart_says_there_is_nothing_to_draw() -> None:
    for markup in (
        hbar("e", "T", "D", []),
        histogram("e", "T", "D", []),
        stacked("e", "T", "D", ["a", "b"], []),
    ):
        assert "Nothing to draw" in "".join(parsed(markup).itertext())
