"""Frontier figures with matplotlib (Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from privft.frontier import (  # noqa: E402
    LABELS,
    RECIPE_COLORS,
    RECIPE_MARKERS,
    Panel,
    Point,
    pareto_steps,
)


def _draw_panel(ax, points: list[Point], panel: Panel) -> None:
    for index, point in enumerate(points):
        px, py = point.mean.get(panel.x), point.mean.get(panel.y)
        if px is None or py is None:
            continue
        ax.errorbar(
            px,
            py,
            xerr=_err(point, panel.x),
            yerr=_err(point, panel.y),
            fmt=RECIPE_MARKERS.get(point.recipe, "o"),
            color=RECIPE_COLORS.get(point.recipe, "gray"),
            markersize=8,
            capsize=3,
            markeredgecolor="black" if index in panel.pareto else "none",
        )
        ax.annotate(point.name, (px, py), textcoords="offset points", xytext=(5, 5), fontsize=6)
    if panel.pareto:
        xs, ys, where = pareto_steps(points, panel)
        ax.step(xs, ys, "--", where=where, color="black", lw=1)
    if panel.missing:
        ax.text(
            0.01,
            0.01,
            "not drawn (no value): " + ", ".join(panel.missing),
            transform=ax.transAxes,
            fontsize=6,
            color="dimgray",
            wrap=True,
        )
    ax.margins(0.15)
    ax.set_xlabel(_axis_label(panel.x, panel.x_better), fontsize=8)
    ax.set_ylabel(_axis_label(panel.y, panel.y_better), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _axis_label(measure: str, better: str) -> str:
    label = LABELS.get(measure, measure)
    return f"{label} [{'lower' if better == 'min' else 'higher'} is better]"


def _err(point: Point, measure: str):
    interval = point.ci95.get(measure)
    if not interval:
        return None
    mean = point.mean[measure]
    return [[mean - interval[0]], [interval[1] - mean]]


def plot_frontier(points: list[Point], panels: list[Panel], out: Path) -> None:
    """Draw every panel (the chosen pair first) into frontier.png and frontier.svg."""
    if len(panels) == 1:
        columns = 1
    elif len(panels) <= 4:
        columns = 2
    else:
        columns = 3
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.6 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]

    for number, (ax, panel) in enumerate(zip(flat, panels, strict=False)):
        _draw_panel(ax, points, panel)
        title = f"{panel.x} vs {panel.y}"
        if number == 0:
            title = "chosen pair: " + title
        ax.set_title(title + " (Pareto set outlined, dashed)", fontsize=9)
    for ax in flat[len(panels) :]:
        ax.axis("off")

    handles = [
        plt.Line2D([], [], marker=RECIPE_MARKERS[r], color=RECIPE_COLORS[r], ls="", label=r)
        for r in RECIPE_MARKERS
        if any(p.recipe == r for p in points)
    ]
    fig.legend(handles=handles, loc="upper center", ncol=max(1, len(handles)), fontsize=8)
    fig.text(
        0.5,
        0.005,
        "Markers: means over seeds. Bars: 95% t-intervals over seeds (settings with 2+ seeds).",
        ha="center",
        fontsize=7,
        color="dimgray",
    )

    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    for suffix in ("png", "svg"):
        fig.savefig(Path(out) / f"frontier.{suffix}", dpi=130)
    plt.close(fig)
