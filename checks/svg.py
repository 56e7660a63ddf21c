"""SVG charts for the report site: a line chart, a pass/fail strip, a sparkline and a lineage graph.

Each function returns one inline ``<svg>`` element (no script, no external resource); tooltips are
SVG ``<title>`` elements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape

_COLORS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#6e7781")
_OUTCOME_COLORS = {
    "passed": "#2da44e",
    "failed": "#cf222e",
    "warned": "#d4a72c",
    "not_evaluated": "#8c959f",
    "absent": "#eaeef2",
}
_NAMESPACE_COLORS = {"bronze": "#f3e3d3", "silver": "#e6e9ef", "gold": "#fff1c2", "quarantine": "#ffd8d3"}


def _e(value: object) -> str:
    return "" if value is None else escape(str(value))


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def line_chart(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> str:
    """An SVG line chart: one line per series over the categories ``labels``, with axes and a legend.

    A point's tooltip names its series, category and value; ``None`` values are gaps.
    """
    width, height, left, right, top, bottom = 560, 220, 56, 12, 24, 34
    values = [v for vs in series.values() for v in vs if v is not None]
    low, high = min([0.0, *values]), max([0.0, *values])
    high = high if high > low else low + 1
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height + 18 * ((len(series) + 2) // 3)}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>'
        f'<text x="{left}" y="14" font-weight="600">{_e(title)}</text>'
    ]
    for k in range(5):
        v = low + (high - low) * k / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#d8dee4"/>'
            f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_e(_fmt(v))}</text>'
        )
    ends = {0: "start", len(labels) - 1: "end"} if len(labels) > 1 else {0: "middle"}
    for i, anchor in ends.items() if labels else ():
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}">'
            f"{_e(labels[i][:40])}</text>"
        )
    for n, (name, vs) in enumerate(series.items()):
        color = _COLORS[n % len(_COLORS)]
        points = [(x(i), y(v), i, v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        dots = points if len(points) <= 120 else []
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}">'
            f"<title>{_e(name)} · {_e(labels[i])}: {_e(_fmt(v))}</title></circle>"
            for px, py, i, v in dots
        ]
        lx, ly = left + (n % 3) * 170, height + 12 + 18 * (n // 3)
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly}">{_e(name[:26])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def strip(cells: Sequence[tuple[str, str]], cell: int = 10) -> str:
    """An SVG row of squares, one per (outcome, tooltip), oldest left: a pass/fail timeline."""
    width = max(len(cells), 1) * (cell + 2)
    rects = "".join(
        f'<rect x="{i * (cell + 2)}" y="0" width="{cell}" height="{cell}" rx="2" '
        f'fill="{_OUTCOME_COLORS.get(outcome, _OUTCOME_COLORS["absent"])}"><title>{_e(tip)}</title></rect>'
        for i, (outcome, tip) in enumerate(cells)
    )
    return (
        f'<svg class="timeline" role="img" width="{width}" height="{cell}" '
        f'xmlns="http://www.w3.org/2000/svg">{rects}</svg>'
    )


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 18) -> str:
    """A small SVG line of ``values`` (empty when fewer than two are numbers)."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return ""
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    path = " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in points)
    return (
        f'<svg class="spark" role="img" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_e(_fmt(low))} .. {_e(_fmt(high))}</title>"
        f'<polyline fill="none" stroke="#0969da" stroke-width="1.2" points="{path}"/></svg>'
    )


def lineage_graph(lineage: Mapping[str, Sequence[str]], link: Mapping[str, str]) -> str:
    """The tables as an SVG graph, left to right: a band of columns per namespace, in build order.

    Namespaces are ordered by how early their tables can be built; within a namespace, a table
    stands one column right of the tables of that namespace it is built from. A table nothing is
    built from, made from some of the tables another is made from (a quarantine table and its
    silver table), is drawn below that one. Each node links to ``link[table]`` when given; an edge
    runs from each upstream table to its downstream one.
    """
    nodes = sorted(set(lineage) | {u for ups in lineage.values() for u in ups})
    downstream: dict[str, list[str]] = defaultdict(list)
    for node, ups in lineage.items():
        for up in ups:
            downstream[up].append(node)
    beside: dict[str, str] = {}
    for node in nodes:
        made_from = set(lineage.get(node, ()))
        if downstream[node] or not made_from:
            continue
        wider = [
            d
            for d in lineage
            if d != node and made_from <= set(lineage[d]) and (made_from < set(lineage[d]) or downstream[d])
        ]
        if wider:  # the closest: made from the fewest other tables
            beside[node] = min(wider, key=lambda d: (len(lineage[d]), d))
    beside = {node: sibling for node, sibling in beside.items() if sibling not in beside}
    depth: dict[str, int] = {}
    local: dict[str, int] = {}

    def level(node: str, depths: dict[str, int], same_band: bool, seen: frozenset[str] = frozenset()) -> int:
        if node not in depths:
            ups = [u for u in lineage.get(node, ()) if u not in seen]
            if same_band:
                ups = [u for u in ups if u.split(".", 1)[0] == node.split(".", 1)[0]]
            depths[node] = 1 + max((level(u, depths, same_band, seen | {node}) for u in ups), default=-1)
        return depths[node]

    bands: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        level(node, depth, same_band=False)
        level(node, local, same_band=True)
        if node not in beside:
            bands[node.split(".", 1)[0]].append(node)
    column: dict[str, int] = {}
    offset = 0
    for band in sorted(bands, key=lambda b: (min(depth[n] for n in bands[b]), b)):
        for node in bands[band]:
            column[node] = offset + local[node]
        offset += 1 + max(local[n] for n in bands[band])
    column |= {node: column[sibling] for node, sibling in beside.items()}
    columns: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        columns[column[node]].append(node)
    row: dict[str, float] = {}
    for _ in range(2):  # order each column by the mean row of its neighbours: fewer crossing edges
        for c in sorted(columns):

            def rank(node: str) -> tuple[bool, float, str]:
                near = [row[u] for u in lineage.get(node, ()) if u in row]
                near += [row[d] for d in downstream[node] if d in row]
                return (node in beside, sum(near) / len(near) if near else 0.0, node)

            columns[c].sort(key=rank)
            for i, node in enumerate(columns[c]):
                row[node] = i
    box_w, box_h, gap_x, gap_y, pad = 150, 22, 42, 10, 10
    pos = {n: (pad + column[n] * (box_w + gap_x), pad + row[n] * (box_h + gap_y)) for n in nodes}
    width = pad * 2 + (max(columns, default=0) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + max((len(c) for c in columns.values()), default=1) * (box_h + gap_y)
    edges = []
    for node, ups in lineage.items():
        x2, y2 = pos[node][0], pos[node][1] + box_h / 2
        for up in ups:
            x1, y1 = pos[up][0] + box_w, pos[up][1] + box_h / 2
            mid = (x1 + x2) / 2
            edges.append(
                f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
                f'fill="none" stroke="#8c959f" stroke-width="1"><title>{_e(up)} → {_e(node)}</title></path>'
            )
    boxes = []
    for node in nodes:
        x, y = pos[node]
        fill = _NAMESPACE_COLORS.get(node.split(".", 1)[0], "#ffffff")
        box = (
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" fill="{fill}" stroke="#57606a"/>'
            f'<text x="{x + 6}" y="{y + 15}">{_e(node)}</text>'
        )
        boxes.append(f'<a href="{_e(link[node])}">{box}</a>' if node in link else box)
    return (
        f'<svg class="lineage" role="img" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg"><title>Table lineage</title>'
        f"{''.join(edges)}{''.join(boxes)}</svg>"
    )
