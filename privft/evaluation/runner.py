"""One evaluator for every run: load models and data, compute every measure, write results.json."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from privft.config import read_run_config
from privft.data import Dataset, load_dataset_dir
from privft.data.encoding import encode_records
from privft.evaluation.exposure import enumeration_steps, exposure_report
from privft.evaluation.membership import membership_report
from privft.evaluation.memorization import memorization_report
from privft.evaluation.scoring import TokenScores, score_records
from privft.models import load_model, load_tokenizer, resolve_model_path
from privft.privacy.ledger import read_privacy_ledger
from privft.progress import ProgressBar
from privft.recipes.runinfo import hardware, package_versions, read_run_info
from privft.storage import atomic_write_json

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def load_finetuned(run_dir: Path, base_model: str) -> torch.nn.Module:
    """Load a run's final model: full weights, or the base with its LoRA adapter merged in."""
    checkpoint = Path(run_dir) / "checkpoint"
    if not checkpoint.exists():
        raise FileNotFoundError(
            f"{checkpoint} not found; train the run first (`privft train --out {run_dir} ...`)"
        )
    if (checkpoint / "adapter_config.json").exists():
        base = load_model(base_model)
        return PeftModel.from_pretrained(base, checkpoint).merge_and_unload().eval()
    return load_model(str(checkpoint))


def _subsample(records: list, limit: int | None) -> list:
    return records if limit is None or len(records) <= limit else records[:limit]


def evaluate_models(
    finetuned: torch.nn.Module,
    base: torch.nn.Module,
    tokenizer,
    dataset: Dataset,
    *,
    max_length: int,
    max_records: int | None = None,
    exposure_method: str = "auto",
    exposure_samples: int = 5000,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Compute memorization, utility, membership and exposure for a fine-tuned model and base."""
    splits = {
        "train": _subsample(dataset.train_plain, max_records),
        "test": _subsample(dataset.test, max_records),
    }
    encoded = {s: encode_records(r, tokenizer, max_length=max_length) for s, r in splits.items()}
    pad = tokenizer.pad_token_id
    scores: dict[tuple[str, str], list[TokenScores]] = {}
    total = 2 * sum(len(e) for e in encoded.values())
    with ProgressBar("score records", total, enabled=show_progress) as bar:
        for name, model in (("finetuned", finetuned), ("base", base)):
            for split, records in encoded.items():
                scores[name, split] = score_records(model, records, pad_token_id=pad, progress=bar)
    memorization = memorization_report(scores, seed=seed)
    membership = membership_report(
        {s: scores["finetuned", s] for s in splits},
        {s: scores["base", s] for s in splits},
        seed=seed,
    )
    exposure = None
    if dataset.canaries:
        steps = enumeration_steps(dataset.canaries, tokenizer)
        with ProgressBar("canary exposure", steps, enabled=show_progress) as bar:
            exposure = exposure_report(
                finetuned,
                tokenizer,
                dataset.canaries,
                method=exposure_method,
                samples=exposure_samples,
                seed=seed,
                progress=bar,
            )
    return {
        "memorization": memorization,
        "utility": _utility(scores),
        "membership": membership,
        "exposure": exposure,
    }


def _utility(scores: dict[tuple[str, str], list[TokenScores]]) -> dict[str, float]:
    """Held-out NLL and perplexity: non-sensitive tokens (primary) and all tokens."""
    out = {}
    for model in ("finetuned", "base"):
        records = scores[model, "test"]
        plain = [nll for r in records for nll, s in zip(r.nll, r.sensitive, strict=True) if not s]
        every = [nll for r in records for nll in r.nll]
        plain_nll = sum(plain) / len(plain)
        all_nll = sum(every) / len(every)
        out[f"{model}_test_nonsensitive_nll_nats"] = plain_nll
        out[f"{model}_test_nonsensitive_ppl"] = math.exp(plain_nll)
        out[f"{model}_test_nll_nats"] = all_nll
        out[f"{model}_test_ppl"] = math.exp(all_nll)
    return out


def flat_measures(results: dict[str, Any]) -> dict[str, float | None]:
    """The numbers a frontier plots, flattened under stable snake_case names with units."""
    mem, util, mia = results["memorization"], results["utility"], results["membership"]
    measures: dict[str, float | None] = {
        "sensitive_gap": mem["sensitive_gap"],
        "nonsensitive_gap": mem["nonsensitive_gap"],
        "sensitive_gain": mem["sensitive_gain"],
        "test_nonsensitive_nll_nats": util["finetuned_test_nonsensitive_nll_nats"],
        "test_nonsensitive_ppl": util["finetuned_test_nonsensitive_ppl"],
        "test_nll_nats": util["finetuned_test_nll_nats"],
        "test_ppl": util["finetuned_test_ppl"],
        "mia_auc": mia["all_tokens"]["loss"]["auc"],
        "mia_auc_calibrated": mia["all_tokens"]["calibrated"]["auc"],
        "mia_sensitive_auc": mia["sensitive_tokens"]["loss"]["auc"],
        "mia_tpr_at_1pct_fpr": mia["all_tokens"]["loss"]["tpr_at_1pct_fpr"],
    }
    exposure = results.get("exposure")
    if exposure:
        for reps, value in exposure["mean_by_repetitions"].items():
            key = "exposure_reference" if reps == "0" else f"exposure_r{reps}"
            measures[key] = value
        inserted = [c["exposure"] for c in exposure["canaries"] if c["repetitions"] > 0]
        measures["exposure_max"] = max(inserted) if inserted else None
    cost = results.get("cost") or {}
    for key in (
        "epsilon",
        "train_time_s",
        "time_per_step_s",
        "tokens_per_s",
        "peak_memory_mb",
        "trainable_params",
        "total_params",
    ):
        measures[key] = cost.get(key)
    return measures


def evaluate_run(
    run_dir: Path,
    *,
    data: Path | None = None,
    max_records: int | None = None,
    exposure_method: str = "auto",
    exposure_samples: int = 5000,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a privft run folder and write its ``results.json`` atomically."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    info = read_run_info(run_dir)
    if info is None or info.status != "completed":
        status = info.status if info else "missing"
        raise RuntimeError(
            f"{run_dir}: training status is {status!r}, not completed; finish it "
            f"with `privft resume {run_dir}`"
        )
    started = time.perf_counter()
    dataset = load_dataset_dir(Path(data or config.data))
    tokenizer = load_tokenizer(str(run_dir / "checkpoint"))
    finetuned = load_finetuned(run_dir, config.model)
    base = load_model(config.model)
    results = evaluate_models(
        finetuned,
        base,
        tokenizer,
        dataset,
        max_length=config.max_length,
        max_records=max_records,
        exposure_method=exposure_method,
        exposure_samples=exposure_samples,
        seed=config.seed,
        show_progress=show_progress,
    )
    ledger = read_privacy_ledger(run_dir)
    results["cost"] = {**info.cost, "epsilon": ledger["epsilon"] if ledger else None}
    results["privacy"] = ledger
    results["run"] = {
        "run_dir": str(run_dir),
        "name": run_dir.name,
        "recipe": config.recipe,
        "model": config.model,
        "model_path": resolve_model_path(config.model),
        "data": str(data or config.data),
        "config": config.to_dict(),
        "status": info.status,
        "commit": info.commit,
        "trained_at": info.finished_at,
    }
    results["environment"] = {"packages": package_versions(), "hardware": hardware()}
    results["eval_time_s"] = time.perf_counter() - started
    results["schema_version"] = SCHEMA_VERSION
    results["measures"] = flat_measures(results)
    atomic_write_json(run_dir / "results.json", _json_safe(results))
    return results


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) with None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
