"""Privacy-utility frontiers over many runs: Pareto sets, plots, CSV, Markdown, JSON and HTML.

Reads only ``results.json`` files. Runs whose configs differ only in their seed (and in settings
that do not change what is trained, such as the output folder) are one setting: the frontier
shows their mean with a 95% t-interval over seeds.
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

from privft.config import TrainConfig
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
LABELS = {
    "sensitive_gap": "sensitive gap (nats/token, higher = more PII memorized)",
    "nonsensitive_gap": "non-sensitive gap (nats/token)",
    "test_nonsensitive_nll_nats": "held-out non-sensitive NLL (nats/token, lower = better)",
    "test_nll_nats": "held-out NLL, all tokens (nats/token)",
    "exposure_max": "max canary exposure (bits)",
    "mia_auc": "membership inference AUC (loss attack)",
    "mia_auc_calibrated": "membership inference AUC (base-calibrated attack)",
    "epsilon": "epsilon spent (DP runs)",
    "train_time_s": "training time (s)",
    "peak_memory_mb": "peak memory (MB)",
    "trainable_params": "trainable parameters",
}
RECIPE_MARKERS = {"full": "o", "lora": "s", "dp_sgd": "^", "dp_lora": "D"}
RECIPE_COLORS = {"full": "#d62728", "lora": "#ff7f0e", "dp_sgd": "#1f77b4", "dp_lora": "#2ca02c"}
# Panels drawn beside the chosen pair, each against the same utility measure: privacy measures,
# then one cost measure.
DEFAULT_PANELS = ("sensitive_gap", "exposure_max", "mia_auc", "epsilon", "train_time_s")
# Config keys (dotted for nested ones) that do not change what a run learns: logging, output,
# memory chunking and how per-sample gradients are computed. Runs that differ only here and in
# the seed are one setting.
NOT_SETTINGS = (
    "seed",
    "out",
    "log_every",
    "checkpoint_every",
    "eval_every",
    "report_to",
    "physical_batch_size",
    "dp.grad_sample_mode",
)
# Short label parts for settings that vary between points, e.g. "eps8", "r16", "lr0.002".
LABEL_PREFIXES = {"dp.epsilon": "eps", "dp.noise_multiplier": "nm", "lora.r": "r"}
LABEL_PREFIXES.update({"learning_rate": "lr", "epochs": "ep"})
# Table names of the settings most often compared.
SETTING_COLUMNS = {"lora.r": "lora_r", "dp.epsilon": "target_epsilon"}
TABLE_MEASURES = (
    "sensitive_gap",
    "exposure_max",
    "mia_auc",
    "test_nonsensitive_nll_nats",
    "test_nonsensitive_ppl",
    "epsilon",
    "train_time_s",
    "peak_memory_mb",
    "trainable_params",
)


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
    seeds: list[Any] = field(default_factory=list)
    # True when any of its runs reports an approximate epsilon (privacy.json gives the reason).
    epsilon_approximate: bool = False


@dataclass
class Panel:
    """One plot: measure ``x`` against ``y``, better directions and the Pareto set's indices."""

    x: str
    y: str
    x_better: str
    y_better: str
    pareto: set[int]
    # Names of points without a value for x or y (e.g. epsilon of non-DP runs).
    missing: list[str] = field(default_factory=list)


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


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[f"{prefix}{key}"] = ",".join(map(str, value))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_setting(config: dict[str, Any]) -> dict[str, Any]:
    """Return the flattened settings that decide what a run learns: its config without the seed.

    LoRA settings count only for LoRA recipes and DP settings only for DP recipes. The config
    is first completed with this version's defaults, so a run saved before a setting existed
    groups with runs that leave that setting at its default.
    """
    config = _with_defaults(config)
    recipe = config.get("recipe")
    kept = dict(config)
    if recipe not in ("lora", "dp_lora"):
        kept.pop("lora", None)
    if recipe not in ("dp_sgd", "dp_lora"):
        kept.pop("dp", None)
    return {k: v for k, v in _flatten(kept).items() if k not in NOT_SETTINGS}


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Return ``config`` with the settings it lacks at their defaults, if it is a valid config."""
    try:
        return TrainConfig(**config).to_dict()
    except (TypeError, ValueError):
        # A config from another privft version or a hand-made one: compare it as it is.
        return config


def _mean_ci(values: list[Any]) -> tuple[float | None, list[float] | None]:
    finite = [float(v) for v in values if _is_number(v) and math.isfinite(v)]
    if not finite:
        return None, None
    mean = float(np.mean(finite))
    if len(finite) < 2:
        return mean, None
    half = stats.t.ppf(0.975, len(finite) - 1) * stats.sem(finite)
    return mean, [mean - float(half), mean + float(half)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def aggregate(results: list[dict[str, Any]]) -> list[Point]:
    """Group runs by setting (all but the seed) and average their measures over seeds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        key = json.dumps(run_setting(result["run"]["config"]), sort_keys=True, default=str)
        groups.setdefault(key, []).append(result)
    points = []
    for key, members in groups.items():
        setting = json.loads(key)
        names = sorted({k for m in members for k in m["measures"]})
        mean, ci = {}, {}
        for name in names:
            mean[name], ci[name] = _mean_ci([m["measures"].get(name) for m in members])
        seeds = [m["run"]["config"].get("seed") for m in members]
        if len(set(map(str, seeds))) < len(seeds):
            logger.warning(
                "runs %s have the same setting and seed; they are averaged as if independent",
                ", ".join(m["run"]["run_dir"] for m in members),
            )
        runs = [m["run"]["run_dir"] for m in members]
        approximate = any((m.get("privacy") or {}).get("approximate") for m in members)
        points.append(Point("", setting["recipe"], setting, runs, mean, ci, seeds, approximate))
    _name_points(points)
    return sorted(points, key=lambda p: p.name)


def _name_points(points: list[Point]) -> None:
    """Name each point by its recipe and the settings that vary between points of one recipe.

    A setting that differs only between recipes (such as each recipe's default learning rate)
    stays out of the names.
    """
    keys = sorted({k for p in points for k in p.settings} - {"recipe"})
    varying = []
    for key in keys:
        values: dict[str, set[str]] = {}
        for point in points:
            if key in point.settings:
                values.setdefault(point.recipe, set()).add(json.dumps(point.settings[key]))
        if any(len(v) > 1 for v in values.values()):
            varying.append(key)
    for point in points:
        parts = [point.recipe]
        for key in varying:
            # An unset value (such as no noise multiplier beside a target epsilon) names nothing.
            if point.settings.get(key) is not None:
                parts.append(_label_part(key, point.settings[key]))
        point.name = "-".join(parts)
    seen: dict[str, int] = {}
    for point in points:
        seen[point.name] = seen.get(point.name, 0) + 1
        if seen[point.name] > 1:
            point.name += f"-{seen[point.name]}"


def _label_part(key: str, value: Any) -> str:
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    if key == "data" or key == "model":
        return Path(str(value)).name
    if key in LABEL_PREFIXES:
        return f"{LABEL_PREFIXES[key]}{shown}"
    return f"{key.rsplit('.', 1)[-1]}={shown}"


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


def pareto_steps(points: list[Point], panel: Panel) -> tuple[list[float], list[float], str]:
    """Return the Pareto set's x and y sorted by x, and the matplotlib ``step`` mode.

    The steps trace the edge of the region the set dominates: right then up or down when lower x
    is better ("post"), up or down then right when higher x is better ("pre").
    """
    front = sorted((points[i].mean[panel.x], points[i].mean[panel.y]) for i in panel.pareto)
    where = "post" if panel.x_better == "min" else "pre"
    return [p[0] for p in front], [p[1] for p in front], where


def direction(measure: str, override: str | None = None) -> str:
    """Return ``min`` or ``max``: the override if given, else the measure's known direction."""
    if override is not None:
        if override not in ("min", "max"):
            raise FrontierError(f"direction must be 'min' or 'max', got {override!r}")
        return override
    return BETTER.get(measure, "min")


def make_panel(points: list[Point], x: str, y: str, x_better: str, y_better: str) -> Panel:
    """Find the Pareto set of ``x`` against ``y`` among the points that have both measures."""
    usable = [i for i, p in enumerate(points) if p.mean.get(x) is not None]
    usable = [i for i in usable if points[i].mean.get(y) is not None]
    front = pareto_set(
        [points[i].mean[x] for i in usable],
        [points[i].mean[y] for i in usable],
        x_better=x_better,
        y_better=y_better,
    )
    missing = [p.name for i, p in enumerate(points) if i not in usable]
    return Panel(x, y, x_better, y_better, {usable[i] for i in front}, missing)


def add_result_paths(results: list[dict[str, Any]], names: list[str]) -> None:
    """Copy numbers found at dotted paths of results.json (``privacy.noise_multiplier``) into
    each result's measures, so that any number in the file can be an axis."""
    for name in names:
        if "." not in name:
            continue
        for result in results:
            if name in result["measures"]:
                continue
            value: Any = result
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None and not _is_number(value):
                raise FrontierError(
                    f"{name} in {result['run']['run_dir']}/results.json is {value!r}, not a "
                    "number; pick a path that ends at a number"
                )
            result["measures"][name] = value


def frontier_table(
    points: list[Point], x: str, y: str, pareto: set[int], *, intervals: bool = False
) -> list[dict[str, Any]]:
    """One row per point: name, recipe, seeds, Pareto flag, varying settings and main measures.

    With ``intervals``, each measure also gets ``_ci95_low`` and ``_ci95_high`` columns.
    """
    shown = _shown_settings(points)
    rows = []
    for index, point in enumerate(points):
        row = {
            "name": point.name,
            "recipe": point.recipe,
            "seeds": len(point.runs),
            "pareto": index in pareto,
        }
        for key in shown:
            row[f"setting.{SETTING_COLUMNS.get(key, key)}"] = point.settings.get(key)
        for measure in dict.fromkeys([x, y, *TABLE_MEASURES]):
            row[measure] = point.mean.get(measure)
            if intervals:
                interval = point.ci95.get(measure) or [None, None]
                row[f"{measure}_ci95_low"], row[f"{measure}_ci95_high"] = interval
        if any(p.epsilon_approximate for p in points):
            row["epsilon_approximate"] = point.epsilon_approximate
        rows.append(row)
    return rows


def _shown_settings(points: list[Point]) -> list[str]:
    """Settings worth a table column: LoRA rank, target epsilon and any that vary."""
    keys = sorted({k for p in points for k in p.settings} - {"recipe"})
    shown = []
    for key in keys:
        values = {json.dumps(p.settings[key]) for p in points if key in p.settings}
        if key in SETTING_COLUMNS or len(values) > 1:
            shown.append(key)
    return shown


def _markdown(points: list[Point], rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for point, row in zip(points, rows, strict=True):
        cells = []
        for column in columns:
            cell = _cell(row.get(column))
            interval = point.ci95.get(column)
            if interval:
                cell += f" [{interval[0]:.4g}, {interval[1]:.4g}]"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nMeans over seeds; brackets give 95% t-intervals over seeds where a setting has "
        "two or more seeds.\n"
    )
    return "\n".join(lines) + "\n" + note


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


def _check_measures(points: list[Point], measures: list[str]) -> None:
    known = sorted({k for p in points for k in p.mean})
    for measure in measures:
        if all(p.mean.get(measure) is None for p in points):
            raise FrontierError(
                f"measure {measure!r} has no value in any results.json; known measures: "
                + ", ".join(known)
                + " (or a dotted path to a number in results.json, e.g. privacy.noise_multiplier)"
            )


def build_frontier(
    run_dirs: list[Path],
    out: Path,
    *,
    x: str = "sensitive_gap",
    y: str = "test_nonsensitive_nll_nats",
    x_better: str | None = None,
    y_better: str | None = None,
    panels: list[str] | tuple[str, ...] | None = DEFAULT_PANELS,
    panel_better: dict[str, str] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Write frontier.png/.svg/.csv/.md/.json/.html into ``out``; return the JSON summary.

    The first panel plots ``x`` against ``y`` in the given directions. Each measure in ``panels``
    (those without any value are left out, as is ``x``) adds one panel against the same ``y``,
    with its own Pareto set in the direction from ``panel_better`` or ``BETTER``.
    """
    results = load_results(run_dirs)
    extra = [m for m in (panels or ()) if m != x]
    add_result_paths(results, [x, y, *extra])
    points = aggregate(results)
    _check_measures(points, [x, y])
    xd, yd = direction(x, x_better), direction(y, y_better)
    main = make_panel(points, x, y, xd, yd)
    chosen = [main]
    for measure in extra:
        if any(p.mean.get(measure) is not None for p in points):
            better = direction(measure, (panel_better or {}).get(measure))
            chosen.append(make_panel(points, measure, y, better, yd))
    rows = frontier_table(points, x, y, main.pareto)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from privft.html_report import write_frontier_html
    from privft.plots import plot_frontier

    plot_frontier(points, chosen, out)
    atomic_write_text(
        out / "frontier.csv", _csv(frontier_table(points, x, y, main.pareto, intervals=True))
    )
    atomic_write_text(out / "frontier.md", _markdown(points, rows))
    summary = {
        "x": x,
        "y": y,
        "x_better": xd,
        "y_better": yd,
        "pareto": [points[i].name for i in sorted(main.pareto)],
        "panels": [
            {
                "x": p.x,
                "y": p.y,
                "x_better": p.x_better,
                "y_better": p.y_better,
                "pareto": [points[i].name for i in sorted(p.pareto)],
                "missing": p.missing,
            }
            for p in chosen
        ],
        "points": [vars(p) for p in points],
    }
    atomic_write_json(out / "frontier.json", summary)
    write_frontier_html(points, chosen, rows, out / "frontier.html", title=title)
    return summary
