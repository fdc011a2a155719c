"""The main job in one call: synthetic data, four recipes, evaluation and the frontier."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from privft.config import RECIPE_NAMES, TrainConfig
from privft.data.synth import synthesize
from privft.evaluation import evaluate_run
from privft.frontier import build_frontier
from privft.recipes import train
from privft.storage import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo; the defaults fit in about 15 minutes on a 2-core CPU."""

    domain: str = "customer_support"
    n_train: int = 300
    n_test: int = 150
    epochs: float = 2.0
    epsilon: float = 8.0
    seed: int = 0
    model: str = "builtin"


def run_demo(out: Path, plan: DemoPlan = DemoPlan(), *, show_progress: bool = True) -> dict:
    """Make data, train and evaluate every recipe, and draw the frontier under ``out``.

    Finished stages are skipped on a rerun (runs resume; evaluated runs keep results.json).
    """
    out = Path(out)
    data = out / "data"
    started = time.perf_counter()
    if not (data / "manifest.json").exists():
        logger.info("making %s data in %s", plan.domain, data)
        synthesize(plan.domain, data, n_train=plan.n_train, n_test=plan.n_test, seed=plan.seed)
    run_dirs = []
    for recipe in RECIPE_NAMES:
        run_dir = out / "runs" / recipe
        config = TrainConfig(
            recipe=recipe,
            data=str(data),
            out=str(run_dir),
            model=plan.model,
            epochs=plan.epochs,
            seed=plan.seed,
            dp={"epsilon": plan.epsilon},
        )
        logger.info("training %s", recipe)
        train(config, show_progress=show_progress)
        if not (run_dir / "results.json").exists():
            logger.info("evaluating %s", recipe)
            evaluate_run(run_dir, show_progress=show_progress)
        run_dirs.append(run_dir)
    summary = build_frontier(run_dirs, out / "frontier")
    summary["demo_time_s"] = time.perf_counter() - started
    atomic_write_text(out / "summary.md", ranking_markdown(summary))
    return summary


# Measures the demo ranks recipes by, each with the direction that means more privacy risk or
# worse utility. Rank 1 is the safest (or most useful) recipe.
RANKED_MEASURES = {
    "sensitive_gap": "nats/token; higher = more PII memorized",
    # The canaries inserted most often: the maximum over all inserted canaries mostly follows the
    # base model's prior for whichever secret it happens to rank high.
    "exposure_r16": "bits for canaries inserted 16 times; higher = easier to extract",
    "mia_auc": "0.5 = chance; higher = membership easier to infer",
    "test_nonsensitive_nll_nats": "nats/token on held-out text; lower = better utility",
    "train_time_s": "seconds of training",
}


def ranking_markdown(summary: dict) -> str:
    """Build a Markdown table of the demo's measures per recipe, with each recipe's rank."""
    points = {p["recipe"]: p["mean"] for p in summary["points"]}
    lines = [
        "| measure | meaning | " + " | ".join(points) + " |",
        "|---|---|" + "---|" * len(points),
    ]
    for measure, meaning in RANKED_MEASURES.items():
        values = {r: m.get(measure) for r, m in points.items()}
        order = sorted((v, r) for r, v in values.items() if v is not None)
        rank = {r: i + 1 for i, (_, r) in enumerate(order)}
        cells = [f"{values[r]:.4g} (#{rank[r]})" if values[r] is not None else "-" for r in points]
        lines.append(f"| {measure} | {meaning} | " + " | ".join(cells) + " |")
    eps = {r: m.get("epsilon") for r, m in points.items()}
    lines.append(
        "| epsilon | spent by DP runs | "
        + " | ".join(f"{v:.3g}" if v is not None else "none" for v in eps.values())
        + " |"
    )
    total = summary.get("demo_time_s")
    footer = f"\nDemo wall time: {total:.0f} s.\n" if total is not None else "\n"
    return "\n".join(lines) + "\n" + footer
