"""Collect a finished trade-off sweep into committed tables and figures.

Usage: python benchmarks/tradeoff_study/collect.py SWEEP_OUT RESULTS_DIR

Per dataset, it writes the frontier files (PNG, SVG, HTML, CSV, Markdown, JSON) with privacy
measures and training time against utility, a second frontier with peak memory, and
``comparison.md``: the recipes side by side and LoRA minus DP-SGD with Welch 95% intervals over
seeds. It also writes ``runs.csv`` (one row per run) and ``environment.json``.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from privft.frontier import build_frontier
from privft.recipes.runinfo import hardware, package_versions

MEASURES = (
    "sensitive_gap",
    "exposure_max",
    "exposure_r16",
    "mia_auc",
    "mia_sensitive_auc",
    "test_nonsensitive_nll_nats",
    "epsilon",
    "train_time_s",
    "peak_memory_mb",
    "trainable_params",
)


def setting_of(result: dict) -> str:
    config = result["run"]["config"]
    name = config["recipe"]
    if config["recipe"] in ("dp_sgd", "dp_lora"):
        name += f" eps{config['dp']['epsilon']:g}"
    return name


def mean_interval(values: list[float]) -> tuple[float, float | None]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


def welch(a: list[float], b: list[float]) -> tuple[float, float | None]:
    """Return mean(a) - mean(b) and the half-width of its Welch 95% interval."""
    difference = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return difference, None
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    if va + vb == 0:
        return difference, 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return difference, float(stats.t.ppf(0.975, dof) * math.sqrt(va + vb))


# Bootstrap intervals over records that the evaluator stores for single runs.
BOOTSTRAP = {
    "sensitive_gap": ("memorization", "sensitive_gap_ci95"),
    "mia_auc": ("membership", "all_tokens", "loss", "auc_ci95"),
    "mia_sensitive_auc": ("membership", "sensitive_tokens", "loss", "auc_ci95"),
}


def show(mean: float, half: float | None) -> str:
    return f"{mean:.4g}" if half is None else f"{mean:.4g} ± {half:.2g}"


def bootstrap_interval(result: dict, measure: str) -> list[float] | None:
    value = result
    for key in BOOTSTRAP.get(measure, ("missing",)):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def cell(results: list[dict], measure: str) -> str:
    values = [r["measures"].get(measure) for r in results]
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        interval = bootstrap_interval(results[0], measure)
        if interval:
            return f"{values[0]:.4g} [{interval[0]:.3g}, {interval[1]:.3g}]b"
    return show(*mean_interval(values))


def comparison(results: list[dict]) -> str:
    by_setting: dict[str, list[dict]] = {}
    for result in results:
        by_setting.setdefault(setting_of(result), []).append(result)
    recipes = ["full", "lora", "dp_sgd", "dp_lora"]
    order = sorted(by_setting, key=lambda s: (recipes.index(s.split()[0]), s))
    lines = [
        "| measure | " + " | ".join(f"{s} (n={len(by_setting[s])})" for s in order) + " |",
        "|---|" + "---|" * len(order),
    ]
    for measure in MEASURES:
        cells = [cell(by_setting[setting], measure) for setting in order]
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + (
        "\n\nMeans over seeds ± half-width of the 95% t-interval over seeds. A setting with one "
        "seed shows its single run, and `[low, high]b` is the evaluator's 95% bootstrap "
        "interval over records for that run.\n"
    )
    dp_settings = [s for s in order if s.startswith("dp_sgd")]
    if "lora" in by_setting and dp_settings:
        text += "\n### LoRA minus DP-SGD (Welch 95% intervals over seeds where n >= 2)\n\n"
        text += "| measure | " + " | ".join(f"lora - {s}" for s in dp_settings) + " |\n"
        text += "|---|" + "---|" * len(dp_settings) + "\n"
        for measure in MEASURES[:6]:
            cells = []
            for setting in dp_settings:
                a = [r["measures"][measure] for r in by_setting["lora"]]
                b = [r["measures"][measure] for r in by_setting[setting]]
                if None in a or None in b:
                    cells.append("-")
                else:
                    cells.append(show(*welch(a, b)))
            text += f"| {measure} | " + " | ".join(cells) + " |\n"
    return text


def main(sweep_out: Path, results_dir: Path) -> None:
    plan = json.loads((sweep_out / "sweep.json").read_text())
    runs = [Path(r["run_dir"]) for r in plan["runs"]]
    dataset_of = {Path(r["run_dir"]): r["grid"]["dataset"] for r in plan["runs"]}
    done = [r for r in runs if (r / "results.json").exists()]
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for dataset in sorted(set(dataset_of.values())):
        mine = [
            (path, json.loads((path / "results.json").read_text()))
            for path in done
            if dataset_of[path] == dataset
        ]
        if not mine:
            continue
        folder = results_dir / dataset
        title = f"{plan['name']}: {dataset}"
        build_frontier([p for p, _ in mine], folder, title=title)
        build_frontier(
            [p for p, _ in mine],
            folder / "memory",
            panels=["exposure_max", "mia_auc", "peak_memory_mb"],
            title=title + " (memory panel)",
        )
        (folder / "comparison.md").write_text(comparison([r for _, r in mine]))
        for _, result in mine:
            config = result["run"]["config"]
            row = {
                "run": result["run"]["name"],
                "dataset": dataset,
                "recipe": config["recipe"],
                "target_epsilon": config["dp"]["epsilon"] if "dp" in config["recipe"] else None,
                "seed": config["seed"],
                "eval_time_s": result.get("eval_time_s"),
            }
            row.update({m: result["measures"].get(m) for m in MEASURES})
            rows.append(row)
    with open(results_dir / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    environment = {
        "packages": package_versions(),
        "hardware": hardware(),
        "platform": platform.platform(),
        "planned_runs": len(runs),
        "evaluated_runs": len(done),
        "sweep_status": {r["name"]: r["status"] for r in plan["runs"]},
    }
    (results_dir / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/tradeoff_study/collect.py SWEEP_OUT RESULTS_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
