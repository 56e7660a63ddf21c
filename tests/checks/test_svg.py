"""The report site's SVG charts are well-formed XML that draws what it is given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from checks.svg import line_chart, lineage_graph, sparkline, strip

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_a_line_chart_draws_a_line_per_series_and_skips_gaps() -> None:
    chart = parse(
        line_chart("Rows <per> batch", ["a", "b", "c"], {"x & y": [1.0, None, 3.0], "z": [None, None, 2.0]})
    )
    lines = chart.findall(f"{SVG}polyline")
    assert len(lines) == 1  # "z" has one point: a dot, no line
    assert len(lines[0].get("points", "").split()) == 2  # the gap is left out
    assert len(chart.findall(f"{SVG}circle")) == 3
    assert chart.find(f"{SVG}title").text == "Rows <per> batch"  # type: ignore[union-attr]


def test_a_strip_has_a_square_per_verification_coloured_by_outcome() -> None:
    cells = parse(strip([("passed", "1"), ("failed", "2"), ("absent", "3")])).findall(f"{SVG}rect")
    assert [c.find(f"{SVG}title").text for c in cells] == ["1", "2", "3"]  # type: ignore[union-attr]
    assert len({c.get("fill") for c in cells}) == 3


def test_a_sparkline_needs_two_numbers() -> None:
    assert sparkline([None, 1.0]) == ""
    assert parse(sparkline([1.0, None, 2.0])).find(f"{SVG}polyline") is not None


def test_the_lineage_graph_puts_each_table_right_of_what_it_is_built_from() -> None:
    lineage = {
        "silver.a": ["bronze.a"],
        "silver.b": ["bronze.b", "silver.a"],
        "gold.c": ["silver.b"],
        "quarantine.b": ["bronze.b"],
    }
    graph = parse(lineage_graph(lineage, {"silver.a": "tables/silver.a.html"}))
    x = {t.text: float(t.get("x", 0)) for t in graph.iter(f"{SVG}text")}
    y = {t.text: float(t.get("y", 0)) for t in graph.iter(f"{SVG}text")}
    assert x["bronze.a"] < x["silver.a"] < x["silver.b"] < x["gold.c"]
    assert x["quarantine.b"] == x["silver.b"] and y["quarantine.b"] > y["silver.b"]  # drawn below its silver
    edges = [p.find(f"{SVG}title").text for p in graph.iter(f"{SVG}path")]  # type: ignore[union-attr]
    assert sorted(edges) == sorted(f"{u} → {t}" for t, ups in lineage.items() for u in ups)
    (linked,) = graph.iter(f"{SVG}a")
    assert linked.get("href") == "tables/silver.a.html"
