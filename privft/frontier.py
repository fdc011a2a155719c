"""Privacy-utility frontiers over many runs: Pareto sets, plots, CSV, Markdown and JSON.

Reads only ``results.json`` files. Runs that differ only in their seed are one setting: the
frontier plots their mean with a 95% t-interval.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from privft.storage import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

# Direction in which each known measure is better; "min" means lower is better.
BETTER: dict[str, str] = {
    "sensitive_gap": "min",
    "nonsensitive_gap": "min",
    "sensitive_gain": "min",
    "mia_auc": "min",
    "mia_auc_calibrated": "min",
    "mia_sensitive_auc": "min",
    "mia_tpr_at_1pct_fpr": "min",
    "exposure_max": "min",
    "exposure_r1": "min",
    "exposure_r4": "min",
    "exposure_r16": "min",
    "epsilon": "min",
    "test_nonsensitive_nll_nats": "min",
    "test_nonsensitive_ppl": "min",
    "test_nll_nats": "min",
    "test_ppl": "min",
    "train_time_s": "min",
    "time_per_step_s": "min",
    "peak_memory_mb": "min",
    "trainable_params": "min",
    "tokens_per_s": "max",
}
RECIPE_MARKERS = {"full": "o", "lora": "s", "dp_sgd": "^", "dp_lora": "D"}
RECIPE_COLORS = {"full": "#d62728", "lora": "#ff7f0e", "dp_sgd": "#1f77b4", "dp_lora": "#2ca02c"}
# Extra panels drawn beside the chosen pair: privacy measures against the same utility axis.
EXTRA_PANELS = ("exposure_max", "mia_auc", "epsilon")


class FrontierError(ValueError):
    """Run folders or measures unusable for a frontier; the message names them."""


@dataclass
class Point:
    """One setting: the mean of its runs' measures over seeds."""

    name: str
    recipe: str
    settings: dict[str, Any]
    runs: list[str]
    mean: dict[str, float | None]
    ci95: dict[str, list[float] | None] = field(default_factory=dict)


def load_results(paths: list[Path]) -> list[dict[str, Any]]:
    """Read results.json from run folders (or the files themselves); missing ones are errors."""
    results, missing = [], []
    for path in paths:
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        if not file.exists():
            missing.append(str(file))
            continue
        results.append(json.loads(file.read_text(encoding="utf-8")))
    if missing:
        raise FrontierError(
            "results.json not found: "
            + ", ".join(missing)
            + "; evaluate those runs first with `privft eval RUN_DIR`"
        )
    return results


def _setting(result: dict[str, Any]) -> dict[str, Any]:
    config = result["run"]["config"]
    setting = {
        "recipe": config["recipe"],
        "model": config["model"],
        "data": config["data"],
        "learning_rate": config["learning_rate"],
        "epochs": config["epochs"],
    }
    if config["recipe"] in ("lora", "dp_lora"):
        setting["lora_r"] = config["lora"]["r"]
    if config["recipe"] in ("dp_sgd", "dp_lora"):
        setting["target_epsilon"] = config["dp"]["epsilon"]
        setting["noise_multiplier"] = config["dp"]["noise_multiplier"]
    return setting


def _mean_ci(values: list[float]) -> tuple[float | None, list[float] | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    mean = float(np.mean(finite))
    if len(finite) < 2:
        return mean, None
    half = stats.t.ppf(0.975, len(finite) - 1) * stats.sem(finite)
    return mean, [mean - float(half), mean + float(half)]


def aggregate(results: list[dict[str, Any]]) -> list[Point]:
    """Group runs by setting (all but the seed) and average their measures."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        key = json.dumps(_setting(result), sort_keys=True)
        groups.setdefault(key, []).append(result)
    points = []
    for key, members in groups.items():
        setting = json.loads(key)
        names = sorted({k for m in members for k in m["measures"]})
        mean, ci = {}, {}
        for name in names:
            mean[name], ci[name] = _mean_ci([m["measures"].get(name) for m in members])
        label = members[0]["run"]["name"] if len(members) == 1 else _label(setting)
        points.append(
            Point(
                label, setting["recipe"], setting, [m["run"]["run_dir"] for m in members], mean, ci
            )
        )
    return sorted(points, key=lambda p: p.name)


def _label(setting: dict[str, Any]) -> str:
    parts = [setting["recipe"]]
    if setting.get("target_epsilon") is not None:
        parts.append(f"eps{setting['target_epsilon']:g}")
    if setting.get("lora_r") is not None:
        parts.append(f"r{setting['lora_r']}")
    return "-".join(parts)


def pareto_set(
    xs: list[float], ys: list[float], *, x_better: str = "min", y_better: str = "min"
) -> list[int]:
    """Indices of points that no other point dominates (at least as good on both, better on one)."""
    sx = -1.0 if x_better == "max" else 1.0
    sy = -1.0 if y_better == "max" else 1.0
    keep = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        dominated = any(
            sx * xo <= sx * x and sy * yo <= sy * y and (sx * xo < sx * x or sy * yo < sy * y)
            for j, (xo, yo) in enumerate(zip(xs, ys, strict=True))
            if j != i
        )
        if not dominated:
            keep.append(i)
    return keep


def _direction(measure: str, override: str | None) -> str:
    if override is not None:
        if override not in ("min", "max"):
            raise FrontierError(f"direction must be 'min' or 'max', got {override!r}")
        return override
    return BETTER.get(measure, "min")


def frontier_table(points: list[Point], x: str, y: str, pareto: set[int]) -> list[dict[str, Any]]:
    rows = []
    for index, point in enumerate(points):
        row = {
            "name": point.name,
            "recipe": point.recipe,
            "seeds": len(point.runs),
            "pareto": index in pareto,
        }
        row.update(
            {
                f"setting.{k}": v
                for k, v in point.settings.items()
                if k not in ("recipe", "model", "data")
            }
        )
        for measure in dict.fromkeys(
            [
                x,
                y,
                "sensitive_gap",
                "exposure_max",
                "mia_auc",
                "test_nonsensitive_ppl",
                "epsilon",
                "train_time_s",
                "peak_memory_mb",
                "trainable_params",
            ]
        ):
            row[measure] = point.mean.get(measure)
        rows.append(row)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build_frontier(
    run_dirs: list[Path],
    out: Path,
    *,
    x: str = "sensitive_gap",
    y: str = "test_nonsensitive_nll_nats",
    x_better: str | None = None,
    y_better: str | None = None,
) -> dict[str, Any]:
    """Write frontier.png/.svg, frontier.csv, frontier.md and frontier.json into ``out``."""
    points = aggregate(load_results(run_dirs))
    for measure in (x, y):
        if all(p.mean.get(measure) is None for p in points):
            known = sorted({k for p in points for k in p.mean})
            raise FrontierError(
                f"measure {measure!r} is in no results.json; known measures: " + ", ".join(known)
            )
    usable = [p for p in points if p.mean.get(x) is not None and p.mean.get(y) is not None]
    xd, yd = _direction(x, x_better), _direction(y, y_better)
    front = pareto_set(
        [p.mean[x] for p in usable], [p.mean[y] for p in usable], x_better=xd, y_better=yd
    )
    pareto = {points.index(usable[i]) for i in front}
    rows = frontier_table(points, x, y, pareto)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from privft.plots import plot_frontier

    plot_frontier(
        points,
        x=x,
        y=y,
        pareto=pareto,
        out=out,
        x_better=xd,
        y_better=yd,
        extra_panels=[m for m in EXTRA_PANELS if m != x],
    )
    atomic_write_text(out / "frontier.csv", _csv(rows))
    atomic_write_text(out / "frontier.md", _markdown(rows))
    summary = {
        "x": x,
        "y": y,
        "x_better": xd,
        "y_better": yd,
        "pareto": [points[i].name for i in sorted(pareto)],
        "points": [vars(p) for p in points],
    }
    atomic_write_json(out / "frontier.json", summary)
    return summary
