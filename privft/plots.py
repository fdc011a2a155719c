"""Frontier figures with matplotlib (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from privft.frontier import RECIPE_COLORS, RECIPE_MARKERS, Point  # noqa: E402

LABELS = {
    "sensitive_gap": "sensitive gap (nats/token, higher = more PII memorized)",
    "test_nonsensitive_nll_nats": "held-out non-sensitive NLL (nats/token, lower = better)",
    "exposure_max": "max canary exposure (bits)",
    "mia_auc": "membership inference AUC (loss attack)",
    "epsilon": "epsilon spent (DP runs)",
}


def _panel(
    ax, points: list[Point], x: str, y: str, pareto: set[int] | None, x_better: str, y_better: str
) -> None:
    for index, point in enumerate(points):
        px, py = point.mean.get(x), point.mean.get(y)
        if px is None or py is None:
            continue
        xerr = _err(point, x)
        yerr = _err(point, y)
        ax.errorbar(
            px,
            py,
            xerr=xerr,
            yerr=yerr,
            fmt=RECIPE_MARKERS.get(point.recipe, "o"),
            color=RECIPE_COLORS.get(point.recipe, "gray"),
            markersize=8,
            capsize=3,
            markeredgecolor="black" if pareto and index in pareto else "none",
        )
        ax.annotate(point.name, (px, py), textcoords="offset points", xytext=(5, 5), fontsize=7)
    if pareto:
        front = sorted((points[i].mean[x], points[i].mean[y]) for i in pareto)
        ax.step(
            [p[0] for p in front],
            [p[1] for p in front],
            "--",
            where="post",
            color="black",
            lw=1,
            label="Pareto set",
        )
    ax.margins(0.15)
    ax.set_xlabel(LABELS.get(x, x), fontsize=8)
    ax.set_ylabel(LABELS.get(y, y), fontsize=8)
    ax.grid(alpha=0.3)


def _err(point: Point, measure: str):
    interval = point.ci95.get(measure)
    if not interval:
        return None
    mean = point.mean[measure]
    return [[mean - interval[0]], [interval[1] - mean]]


def plot_frontier(
    points: list[Point],
    *,
    x: str,
    y: str,
    pareto: set[int],
    out: Path,
    x_better: str,
    y_better: str,
    extra_panels: list[str],
) -> None:
    """Draw the chosen pair with its Pareto set, plus privacy measures against the same y."""
    extras = [m for m in extra_panels if any(p.mean.get(m) is not None for p in points)][:3]
    columns = 1 if not extras else 2
    rows = 1 if len(extras) < 2 else 2
    fig, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.8 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    _panel(flat[0], points, x, y, pareto, x_better, y_better)
    flat[0].set_title("privacy vs utility (Pareto set outlined, dashed)", fontsize=9)
    for ax, measure in zip(flat[1:], extras, strict=False):
        _panel(ax, points, measure, y, None, "min", y_better)
        ax.set_title(f"{measure} vs utility", fontsize=9)
    for ax in flat[1 + len(extras) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], marker=RECIPE_MARKERS[r], color=RECIPE_COLORS[r], ls="", label=r)
        for r in RECIPE_MARKERS
        if any(p.recipe == r for p in points)
    ]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    for suffix in ("png", "svg"):
        fig.savefig(Path(out) / f"frontier.{suffix}", dpi=130)
    plt.close(fig)
