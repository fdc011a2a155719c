"""Summarize the trade-off study per domain and setting: means and 95% t-intervals over seeds.

Usage: python benchmarks/tradeoff_study/summarize.py SWEEP_OUT > RESULTS_DIR/summary.md

The measures are the ones docs/tradeoff_study.md discusses. ``utility_gain`` is the base model's
held-out non-sensitive NLL minus the fine-tuned model's, in nats per token. When
``SWEEP_OUT/base_eval/DOMAIN/results.json`` exists (``privft eval --model
privft/assets/base_model --base builtin``), a row for the base model itself is added, so that
canary exposures can be read against the base model's prior over the secrets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from collect import mean_interval, setting_of

COLUMNS = {
    "utility_gain": "utility gain (nats/token)",
    "sensitive_gap": "sensitive gap (nats/token)",
    "mia_sensitive_calibrated_auc": "MIA AUC, calibrated, PII tokens",
    "mia_calibrated_auc": "MIA AUC, calibrated, all tokens",
    "exposure_r16": "exposure r16 (bits)",
    "exposure_r4": "exposure r4 (bits)",
    "exposure_reference": "exposure r0 (bits)",
    "epsilon": "epsilon",
}
RECIPES = ["base", "full", "lora", "dp_sgd", "dp_lora"]


def values(result: dict) -> dict[str, float | None]:
    row = {name: result["measures"].get(name) for name in COLUMNS}
    utility = result["utility"]
    row["utility_gain"] = (
        utility["base_test_nonsensitive_nll_nats"] - utility["finetuned_test_nonsensitive_nll_nats"]
    )
    return row


def cell(numbers: list[float | None]) -> str:
    numbers = [x for x in numbers if x is not None]
    if not numbers:
        return "-"
    mean, half = mean_interval(numbers)
    return f"{mean:.3f}" if half is None else f"{mean:.3f} ± {half:.3f}"


def main(sweep_out: Path) -> None:
    by_domain: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(sweep_out.glob("runs/*/results.json")):
        result = json.loads(path.read_text())
        domain = path.parent.name.split("-")[0]
        by_domain.setdefault(domain, {}).setdefault(setting_of(result), []).append(values(result))
    for domain in sorted(by_domain):
        base_file = sweep_out / "base_eval" / domain / "results.json"
        if base_file.exists():
            base = values(json.loads(base_file.read_text()))
            # Against itself the base model has no gain, gap or membership signal by
            # construction, so only its canary exposures are shown.
            shown = {k: (v if k.startswith("exposure") else None) for k, v in base.items()}
            by_domain[domain]["base"] = [shown]
    for domain, settings in sorted(by_domain.items()):
        order = sorted(settings, key=lambda s: (RECIPES.index(s.split()[0]), s))
        print(f"## {domain}\n")
        print("| setting | seeds | " + " | ".join(COLUMNS.values()) + " |")
        print("|---|---:|" + "---:|" * len(COLUMNS))
        for name in order:
            rows = settings[name]
            cells = [cell([row[key] for row in rows]) for key in COLUMNS]
            print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
        print()
    print(
        "Means over training seeds ± half-width of the 95% t-interval over seeds. The base row "
        "is the built-in model evaluated against itself on the same data, for its canary "
        "exposures only.\n"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/tradeoff_study/summarize.py SWEEP_OUT")
    main(Path(sys.argv[1]))
