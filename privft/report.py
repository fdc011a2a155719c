"""A terminal summary of one run folder: settings, cost, privacy ledger and measures.

Reads ``config.yaml``, ``run_info.json``, ``privacy.json`` and ``results.json`` and shows only
settings and numbers. It never shows record text or canary secrets, and results.json contains
neither.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from rich.columns import Columns
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


class ReportError(ValueError):
    """A folder that is not a readable privft run; the message names what is missing."""


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(
            f"{path} is not valid JSON ({err}); rerun the step that wrote it"
        ) from err


def load_run(run_dir: Path) -> dict[str, Any]:
    """Read a run folder's config, run info, privacy ledger and results (None where missing)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise ReportError(
            f"{config_path} not found; is {run_dir} a privft run folder? "
            "(`privft train --out RUN_DIR` makes one)"
        )
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ReportError(f"{config_path} is not valid YAML: {err}") from err
    return {
        "run_dir": str(run_dir),
        "config": config,
        "info": _read_json(run_dir / "run_info.json"),
        "privacy": _read_json(run_dir / "privacy.json"),
        "results": _read_json(run_dir / "results.json"),
    }


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def _interval(value: Any, interval: list[float] | None) -> str:
    text = _number(value)
    if interval and None not in interval:
        text += f"  [{interval[0]:.4g}, {interval[1]:.4g}]"
    return text


def _pairs_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column("name", style="bold")
    table.add_column("value")
    for name, value in rows:
        table.add_row(name, value)
    return table


def header(run: dict[str, Any]) -> Panel:
    """Build the run's name, recipe, status, model, data and provenance panel."""
    config, info, results = run["config"], run["info"], run["results"]
    status = info["status"] if info else "not started (no run_info.json)"
    style = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(status, "yellow")
    lines = Text()
    lines.append(f"{Path(run['run_dir']).name}", style="bold")
    lines.append(f"  recipe {config.get('recipe')}  status ")
    lines.append(status, style=style)
    if results is not None:
        lines.append("  evaluated", style="green")
    else:
        lines.append("  not evaluated", style="yellow")
    lines.append(f"\nmodel {config.get('model')}  data {config.get('data')}")
    if info:
        lines.append(
            f"\nstarted {info.get('started_at')}  finished {info.get('finished_at') or '-'}"
        )
        lines.append(f"  commit {(info.get('commit') or '-')[:12]}")
        if info.get("error"):
            lines.append(f"\nerror: {info['error']}", style="red")
    return Panel(lines, title="privft run", expand=False)


def settings_table(config: dict[str, Any]) -> Table:
    """Build the settings table, with LoRA and DP settings only for recipes that use them."""
    rows = [
        (key, _number(config.get(key)))
        for key in (
            "epochs",
            "batch_size",
            "physical_batch_size",
            "learning_rate",
            "weight_decay",
            "warmup_ratio",
            "max_length",
            "seed",
        )
    ]
    recipe = config.get("recipe")
    if recipe in ("lora", "dp_lora"):
        lora = config.get("lora") or {}
        rows += [(f"lora.{key}", _number(value)) for key, value in lora.items()]
    if recipe in ("dp_sgd", "dp_lora"):
        dp = config.get("dp") or {}
        rows += [(f"dp.{key}", _number(value)) for key, value in dp.items()]
    return _pairs_table("settings", rows)


def cost_table(info: dict[str, Any] | None) -> Table:
    """Build the training cost table from run_info.json: steps, time, memory, parameters."""
    cost = (info or {}).get("cost") or {}
    if not cost:
        return _pairs_table("training cost", [("status", "no cost recorded: training unfinished")])
    trainable, total = cost.get("trainable_params"), cost.get("total_params")
    share = f" ({100 * trainable / total:.3g}% of {total:,})" if trainable and total else ""
    memory = _number(cost.get("peak_memory_mb"))
    if cost.get("memory_method"):
        memory += f" MB ({cost['memory_method']})"
    rows = [
        ("steps", _number(cost.get("steps"))),
        ("train time", f"{_number(cost.get('train_time_s'))} s"),
        ("time per step", f"{_number(cost.get('time_per_step_s'))} s"),
        ("tokens per second", _number(cost.get("tokens_per_s"))),
        ("tokens seen", _number(cost.get("tokens_seen"))),
        ("training records", _number(cost.get("num_train_records"))),
        ("peak memory", memory),
        ("trainable parameters", _number(trainable) + share),
        ("device", _number(cost.get("device"))),
    ]
    return _pairs_table("training cost", rows)


def privacy_table(config: dict[str, Any], ledger: dict[str, Any] | None) -> Table:
    """Build the DP ledger table from privacy.json, or note that the recipe has no DP guarantee."""
    if config.get("recipe") not in ("dp_sgd", "dp_lora"):
        rows = [("guarantee", f"none: {config.get('recipe')} is not differentially private")]
        return _pairs_table("privacy ledger", rows)
    if ledger is None:
        return _pairs_table("privacy ledger", [("status", "no privacy.json: training unfinished")])
    epsilon = _number(ledger.get("epsilon"))
    if ledger.get("target_epsilon") is not None:
        epsilon += f" (target {_number(ledger['target_epsilon'])})"
    if ledger.get("approximate"):
        epsilon += " (approximate: " + "; ".join(ledger.get("approximate_reasons") or []) + ")"
    if ledger.get("stopped_by_budget"):
        epsilon += f" (stopped at the budget {_number(ledger.get('epsilon_budget'))})"
    rows = [
        ("epsilon", epsilon),
        ("delta", _number(ledger.get("delta"))),
        ("accountant", _number(ledger.get("accountant"))),
        ("noise multiplier", _number(ledger.get("noise_multiplier"))),
        ("max grad norm", _number(ledger.get("max_grad_norm"))),
        ("sample rate", _number(ledger.get("sample_rate"))),
        ("expected batch size", _number(ledger.get("expected_batch_size"))),
        ("records", _number(ledger.get("num_records"))),
        ("steps", f"{_number(ledger.get('steps'))} of {_number(ledger.get('planned_steps'))}"),
        ("sampling", _number(ledger.get("sampling"))),
    ]
    return _pairs_table("privacy ledger", rows)


def measures_table(results: dict[str, Any]) -> Table:
    """Build the memorization, utility and membership table with 95% bootstrap intervals."""
    memory = results.get("memorization") or {}
    utility = results.get("utility") or {}
    membership = results.get("membership") or {}
    table = Table(title="measures (95% bootstrap intervals)", title_justify="left")
    table.add_column("measure")
    table.add_column("fine-tuned", justify="right")
    table.add_column("base", justify="right")
    table.add_row(
        "sensitive gap (nats/token)",
        _interval(memory.get("sensitive_gap"), memory.get("sensitive_gap_ci95")),
        "",
    )
    table.add_row(
        "non-sensitive gap (nats/token)",
        _interval(memory.get("nonsensitive_gap"), memory.get("nonsensitive_gap_ci95")),
        "",
    )
    table.add_row("sensitive gain", _number(memory.get("sensitive_gain")), "")

    for key, name in (
        ("test_nonsensitive_nll_nats", "held-out non-sensitive NLL (nats/token)"),
        ("test_nonsensitive_ppl", "held-out non-sensitive perplexity"),
        ("test_nll_nats", "held-out NLL, all tokens (nats/token)"),
    ):
        table.add_row(
            name, _number(utility.get(f"finetuned_{key}")), _number(utility.get(f"base_{key}"))
        )

    for tokens, attacks in (("all_tokens", "all tokens"), ("sensitive_tokens", "PII tokens")):
        for attack in ("loss", "calibrated"):
            metrics = (membership.get(tokens) or {}).get(attack) or {}
            if not metrics:
                continue
            table.add_row(
                f"MIA AUC, {attack} attack, {attacks}",
                _interval(metrics.get("auc"), metrics.get("auc_ci95")),
                "",
            )
    loss = (membership.get("all_tokens") or {}).get("loss") or {}
    if loss:
        table.add_row("MIA TPR at 1% FPR, loss attack", _number(loss.get("tpr_at_1pct_fpr")), "")
    return table


def exposure_table(exposure: dict[str, Any] | None) -> Table | Text:
    """Build the exposure table per insertion count; count 0 rows are never-inserted canaries."""
    if not exposure:
        return Text("canary exposure: no canaries in this run's data", style="dim")
    by_count: dict[int, list[dict[str, Any]]] = {}
    for canary in exposure.get("canaries") or []:
        by_count.setdefault(int(canary["repetitions"]), []).append(canary)
    table = Table(title="canary exposure (bits)", title_justify="left")
    for column in ("insertions", "canaries", "mean", "max", "of at most", "method"):
        table.add_column(column, justify="right")
    for count in sorted(by_count):
        canaries = by_count[count]
        sizes = [c["space_size"] for c in canaries if c.get("space_size")]
        ceiling = math.log2(max(sizes)) if sizes else None
        methods = ", ".join(sorted({c.get("method", "-") for c in canaries}))
        table.add_row(
            f"{count} (reference)" if count == 0 else str(count),
            str(len(canaries)),
            _number(exposure["mean_by_repetitions"].get(str(count))),
            _number(exposure.get("max_exposure", {}).get(str(count))),
            _number(ceiling),
            methods,
        )
    return table


def render_run(run: dict[str, Any]) -> Group:
    """Build every section of the report for a run loaded with ``load_run``."""
    config, results = run["config"], run["results"]
    facts = [settings_table(config), cost_table(run["info"]), privacy_table(config, run["privacy"])]
    sections: list[Any] = [Columns(facts, padding=(0, 4))]
    if results is None:
        note = f"not evaluated yet: run `privft eval {run['run_dir']}`"
        sections.append(Text(note, style="yellow"))
    else:
        sections.append(measures_table(results))
        sections.append(exposure_table(results.get("exposure")))
    parts: list[Any] = [header(run)]
    for section in sections:
        parts += [Text(""), section]
    return Group(*parts)
