"""``privacy.json``: the DP parameters of a run and the epsilon it spent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from privft.storage import atomic_write_json


def write_privacy_ledger(run_dir: Path, private: Any) -> dict[str, Any]:
    """Record accountant, noise, clipping, sample rate, steps, epsilon and delta.

    ``approximate`` is true when the epsilon is not a proven bound for the run that happened;
    ``approximate_reasons`` then gives the reasons.
    """
    plan = private.plan
    reasons = plan.approximate_reasons
    ledger = {
        "accountant": plan.accountant,
        "noise_multiplier": plan.noise_multiplier,
        "max_grad_norm": plan.max_grad_norm,
        "sample_rate": plan.sample_rate,
        "expected_batch_size": plan.expected_batch_size,
        "num_records": plan.num_records,
        "planned_steps": plan.steps,
        "steps": private.steps_taken,
        "delta": plan.delta,
        "epsilon": private.epsilon(),
        "target_epsilon": plan.target_epsilon,
        "epsilon_budget": plan.budget,
        "stopped_by_budget": private.steps_taken < plan.steps,
        "grad_sample_mode": private.mode,
        "sampling": plan.sampling,
        "noise_per": "logical_step",
        "approximate": bool(reasons),
        "approximate_reasons": reasons,
        "history": [list(h) for h in private.accountant.history],
    }
    atomic_write_json(Path(run_dir) / "privacy.json", ledger)
    return ledger


def read_privacy_ledger(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "privacy.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
