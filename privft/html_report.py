"""``frontier.html``: the frontier panels as inline SVG with hover details, in one file.

The page loads nothing: styles, the SVG panels, the point data and a short script are inline, so
it opens from disk without a network. Each point carries an SVG ``<title>``, which browsers show
as a tooltip even with scripts off. The script adds a detail box with the run's settings and
highlights the same setting in every panel and in the table. Opening ``frontier.html#point=3``
selects point 3.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from privft.frontier import LABELS, RECIPE_COLORS, Panel, Point, pareto_steps
from privft.storage import atomic_write_text

WIDTH, HEIGHT = 460, 340
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 14, 58
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.meta { color: #555; margin: 0 0 12px; font-size: 13px; }
.legend span { display: inline-block; margin-right: 16px; font-size: 13px; }
.legend svg { vertical-align: middle; margin-right: 4px; }
.panels { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 6px; }
figcaption { font-size: 12px; color: #444; max-width: 460px; }
svg text { font-size: 10px; fill: #333; }
svg .axis-label { font-size: 11px; }
.pt { cursor: pointer; }
.pt.hl .mark { stroke: #000; stroke-width: 3; }
.pt .name { font-size: 8px; fill: #555; }
#detail { position: sticky; top: 0; background: #f7f7f2; border: 1px solid #ccc;
  border-radius: 6px; padding: 8px 12px; margin: 12px 0; font-size: 13px; min-height: 40px; }
#detail table td { padding: 1px 8px 1px 0; }
table.points { border-collapse: collapse; font-size: 12px; margin-top: 8px; }
table.points th, table.points td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
table.points th:first-child, table.points td:first-child { text-align: left; }
table.points tr.hl { background: #fff3b0; }
"""
SCRIPT = """
const points = JSON.parse(document.getElementById('points-data').textContent);
const detail = document.getElementById('detail');
function highlight(index) {
  document.querySelectorAll('[data-point]').forEach(function (node) {
    node.classList.toggle('hl', Number(node.dataset.point) === index);
  });
}
function row(table, key, value) {
  const tr = table.insertRow();
  tr.insertCell().textContent = key;
  tr.insertCell().textContent = value;
}
function show(index) {
  const p = points[index];
  highlight(index);
  detail.replaceChildren();
  const head = document.createElement('b');
  head.textContent = p.name + ' (' + p.runs.length + ' run' + (p.runs.length > 1 ? 's' : '') +
    ', seeds ' + p.seeds.join(', ') + ')';
  detail.appendChild(head);
  const table = document.createElement('table');
  Object.entries(p.settings).forEach(function (e) { row(table, e[0], String(e[1])); });
  p.shown.forEach(function (m) {
    const ci = p.ci95[m];
    const mean = p.mean[m];
    let text = mean === null || mean === undefined ? '-' : Number(mean).toPrecision(4);
    if (ci) { text += ' [' + ci[0].toPrecision(4) + ', ' + ci[1].toPrecision(4) + ']'; }
    row(table, m, text);
  });
  p.runs.forEach(function (r) { row(table, 'run', r); });
  detail.appendChild(table);
}
document.querySelectorAll('[data-point]').forEach(function (node) {
  node.addEventListener('mouseenter', function () { show(Number(node.dataset.point)); });
});
const linked = /^#point=(\\d+)$/.exec(window.location.hash);
if (linked && Number(linked[1]) < points.length) { show(Number(linked[1])); }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _with_interval(point: Point, measure: str) -> str:
    text = _fmt(point.mean.get(measure))
    interval = point.ci95.get(measure)
    if interval:
        text += f" [{interval[0]:.4g}, {interval[1]:.4g}]"
    return text


def _tooltip(point: Point, panel: Panel) -> str:
    lines = [f"{point.name}: {len(point.runs)} run(s), seeds {', '.join(map(str, point.seeds))}"]
    lines += [f"{panel.x} = {_with_interval(point, panel.x)}"]
    lines += [f"{panel.y} = {_with_interval(point, panel.y)}"]
    lines += [f"{key} = {value}" for key, value in point.settings.items()]
    return "\n".join(lines)


class _Scale:
    """A linear map from data values to SVG pixels, padded so markers stay inside."""

    def __init__(self, values: list[float], start: float, end: float):
        low, high = min(values), max(values)
        if high == low:
            pad = abs(low) * 0.1 or 1.0
        else:
            pad = (high - low) * 0.08
        self.low, self.high = low - pad, high + pad
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)

    def ticks(self) -> list[float]:
        values = MaxNLocator(nbins=5).tick_values(self.low, self.high)
        return [float(v) for v in values if self.low <= v <= self.high]


def _marker(recipe: str, x: float, y: float, size: float = 6.0) -> str:
    color = RECIPE_COLORS.get(recipe, "#888888")
    common = f'fill="{color}" class="mark" stroke="#fff" stroke-width="1"'
    if recipe == "lora":
        return (
            f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size:.1f}" '
            f'height="{2 * size:.1f}" {common}/>'
        )
    if recipe == "dp_sgd":
        corners = [
            (x, y - size * 1.2),
            (x + size * 1.1, y + size * 0.8),
            (x - size * 1.1, y + size * 0.8),
        ]
        return f'<polygon points="{_pairs(corners)}" {common}/>'
    if recipe == "dp_lora":
        corners = [(x, y - size * 1.2), (x + size, y), (x, y + size * 1.2), (x - size, y)]
        return f'<polygon points="{_pairs(corners)}" {common}/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}" {common}/>'


def _pairs(corners: list[tuple[float, float]]) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in corners)


def _extent(points: list[Point], measure: str, drawn: list[int]) -> list[float]:
    values = []
    for i in drawn:
        values.append(points[i].mean[measure])
        values += points[i].ci95.get(measure) or []
    return [v for v in values if v is not None and math.isfinite(v)]


def panel_svg(points: list[Point], panel: Panel) -> str:
    """Draw one panel as an inline ``<svg>`` element with a ``<title>`` on every point."""
    drawn = [i for i, p in enumerate(points) if p.mean.get(panel.x) is not None]
    drawn = [i for i in drawn if points[i].mean.get(panel.y) is not None]
    if not drawn:
        return (
            f'<svg width="{WIDTH}" height="{HEIGHT}"><text x="20" y="40">no point has both '
            f"{html.escape(panel.x)} and {html.escape(panel.y)}</text></svg>"
        )
    sx = _Scale(_extent(points, panel.x, drawn), LEFT, WIDTH - RIGHT)
    sy = _Scale(_extent(points, panel.y, drawn), HEIGHT - BOTTOM, TOP)
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#fcfcfc" stroke="#999"/>',
    ]
    parts += _axes(sx, sy, panel)
    if panel.pareto:
        xs, ys, where = pareto_steps(points, panel)
        parts.append(_step_path(xs, ys, where, sx, sy))
    for i in drawn:
        parts.append(_point_svg(points[i], i, panel, sx, sy))
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(sx: _Scale, sy: _Scale, panel: Panel) -> list[str]:
    parts = []
    bottom, left = HEIGHT - BOTTOM, LEFT
    for tick in sx.ticks():
        x = sx(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{tick:.3g}</text>')
    for tick in sy.ticks():
        y = sy(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{left - 5}" y="{y + 3:.1f}" text-anchor="end">{tick:.3g}</text>')
    middle_x = (LEFT + WIDTH - RIGHT) / 2
    middle_y = (TOP + bottom) / 2
    parts.append(
        f'<text class="axis-label" x="{middle_x:.0f}" y="{HEIGHT - 26}" '
        f'text-anchor="middle">{_axis_label(panel.x, panel.x_better)}</text>'
    )
    parts.append(
        f'<text class="axis-label" transform="translate(14 {middle_y:.0f}) rotate(-90)" '
        f'text-anchor="middle">{_axis_label(panel.y, panel.y_better)}</text>'
    )
    return parts


def _axis_label(measure: str, better: str) -> str:
    """Return the measure's name and better direction, with its description as a tooltip."""
    text = f"{measure} ({'lower' if better == 'min' else 'higher'} is better)"
    description = LABELS.get(measure, measure)
    return f"<title>{html.escape(description)}</title>{html.escape(text)}"


def _step_path(xs: list[float], ys: list[float], where: str, sx: _Scale, sy: _Scale) -> str:
    corners = [(xs[0], ys[0])]
    for i in range(1, len(xs)):
        if where == "post":
            corners.append((xs[i], ys[i - 1]))
        else:
            corners.append((xs[i - 1], ys[i]))
        corners.append((xs[i], ys[i]))
    d = " ".join(
        f"{'M' if n == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for n, (x, y) in enumerate(corners)
    )
    return f'<path d="{d}" fill="none" stroke="#000" stroke-dasharray="5,3" stroke-width="1"/>'


def _point_svg(point: Point, index: int, panel: Panel, sx: _Scale, sy: _Scale) -> str:
    x, y = sx(point.mean[panel.x]), sy(point.mean[panel.y])
    color = RECIPE_COLORS.get(point.recipe, "#888888")
    parts = [f'<g class="pt" data-point="{index}">']
    parts.append(f"<title>{html.escape(_tooltip(point, panel))}</title>")
    x_interval = point.ci95.get(panel.x)
    if x_interval:
        a, b = sx(x_interval[0]), sx(x_interval[1])
        parts.append(
            f'<line x1="{a:.1f}" y1="{y:.1f}" x2="{b:.1f}" y2="{y:.1f}" stroke="{color}"/>'
        )
    y_interval = point.ci95.get(panel.y)
    if y_interval:
        a, b = sy(y_interval[0]), sy(y_interval[1])
        parts.append(
            f'<line x1="{x:.1f}" y1="{a:.1f}" x2="{x:.1f}" y2="{b:.1f}" stroke="{color}"/>'
        )
    marker = _marker(point.recipe, x, y)
    if index in panel.pareto:
        marker = marker.replace('stroke="#fff" stroke-width="1"', 'stroke="#000" stroke-width="2"')
    parts.append(marker)
    parts.append(
        f'<text class="name" x="{x + 8:.1f}" y="{y - 7:.1f}">{html.escape(point.name)}</text>'
    )
    parts.append("</g>")
    return "".join(parts)


def _legend(points: list[Point]) -> str:
    items = []
    for recipe in RECIPE_COLORS:
        if any(p.recipe == recipe for p in points):
            items.append(
                f'<span><svg width="16" height="16">{_marker(recipe, 8, 8, 5)}</svg>'
                f"{html.escape(recipe)}</span>"
            )
    items.append(
        '<span><svg width="16" height="16"><circle cx="8" cy="8" r="5" fill="#ccc" '
        'stroke="#000" stroke-width="2"/></svg>Pareto set (dashed line)</span>'
    )
    return '<div class="legend">' + "".join(items) + "</div>"


def _table(points: list[Point], rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for index, (point, row) in enumerate(zip(points, rows, strict=True)):
        cells = []
        for column in columns:
            text = _with_interval(point, column) if column in point.mean else _fmt(row[column])
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f'<tr data-point="{index}">' + "".join(cells) + "</tr>")
    return f'<table class="points"><tr>{head}</tr>' + "".join(body) + "</table>"


def _points_json(points: list[Point], panels: list[Panel], rows: list[dict[str, Any]]) -> str:
    shown = list(dict.fromkeys([p.x for p in panels] + [panels[0].y] + list(rows[0])))
    payload = []
    for point in points:
        measures = [m for m in shown if m in point.mean]
        payload.append(
            {
                "name": point.name,
                "runs": point.runs,
                "seeds": point.seeds,
                "settings": point.settings,
                "mean": {m: point.mean[m] for m in measures},
                "ci95": {m: point.ci95.get(m) for m in measures},
                "shown": measures,
            }
        )
    # "<" is escaped so that no string in the data can close the <script> element.
    return json.dumps(payload, default=str).replace("<", "\\u003c")


def frontier_html(
    points: list[Point], panels: list[Panel], rows: list[dict[str, Any]], *, title: str | None
) -> str:
    """Return the whole frontier page as one HTML string."""
    title = title or "privft frontier"
    n_runs = sum(len(p.runs) for p in points)
    main = panels[0]
    pareto = ", ".join(points[i].name for i in sorted(main.pareto)) or "none"
    meta = (
        f"{n_runs} runs in {len(points)} settings. Markers are means over seeds and bars 95% "
        f"t-intervals over seeds. Pareto set of {main.x} ({main.x_better}) against {main.y} "
        f"({main.y_better}): {pareto}. Written {time.strftime('%Y-%m-%d %H:%M')}."
    )
    figures = []
    for panel in panels:
        caption = f"{panel.x} vs {panel.y}"
        if panel.missing:
            caption += ". Not drawn (no value): " + ", ".join(panel.missing)
        figures.append(
            f"<figure>{panel_svg(points, panel)}<figcaption>{html.escape(caption)}"
            "</figcaption></figure>"
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">{html.escape(meta)}</p>',
            _legend(points),
            '<div id="detail">Hover over a point or a table row to see its settings.</div>',
            '<div class="panels">',
            *figures,
            "</div>",
            "<h2>Points</h2>",
            _table(points, rows),
            f'<script type="application/json" id="points-data">'
            f"{_points_json(points, panels, rows)}</script>",
            f"<script>{SCRIPT}</script>",
            "</body></html>",
        ]
    )


def write_frontier_html(
    points: list[Point],
    panels: list[Panel],
    rows: list[dict[str, Any]],
    path: Path,
    *,
    title: str | None = None,
) -> None:
    """Write ``frontier_html`` to ``path`` atomically."""
    atomic_write_text(Path(path), frontier_html(points, panels, rows, title=title))
