"""One evaluator for every run: load models and data, compute every measure, write results.json."""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import torch

from privft.config import read_run_config
from privft.data import Dataset, load_dataset_dir
from privft.data.encoding import encode_records
from privft.evaluation.exposure import enumeration_steps, exposure_report
from privft.evaluation.extraction import MAX_RECORDS_PER_SPLIT, extraction_report
from privft.evaluation.membership import ATTACKS, MIN_K_FRACTION, membership_report
from privft.evaluation.memorization import memorization_report
from privft.evaluation.scoring import TokenScores, score_records
from privft.models import ModelLoadError, load_model, load_tokenizer, resolve_model_path
from privft.privacy.ledger import read_privacy_ledger
from privft.progress import ProgressBar
from privft.recipes.adapters import load_merged_adapter
from privft.recipes.runinfo import hardware, package_versions, read_run_info
from privft.schemas import RESULTS_SCHEMA_VERSION
from privft.storage import atomic_write_json

logger = logging.getLogger(__name__)

# The version of privft/schemas/results.schema.json that results.json follows, read from it.
SCHEMA_VERSION = RESULTS_SCHEMA_VERSION


def load_finetuned(run_dir: Path, base_model: str) -> torch.nn.Module:
    """Load a run's final model: full weights, or the base with its LoRA adapter merged in."""
    checkpoint = Path(run_dir) / "checkpoint"
    if not checkpoint.exists():
        raise FileNotFoundError(
            f"{checkpoint} not found; train the run first (`privft train --out {run_dir} ...`)"
        )
    if (checkpoint / "adapter_config.json").exists():
        base = load_model(base_model)
        return load_merged_adapter(base, checkpoint).eval()
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
    extraction_records: int = MAX_RECORDS_PER_SPLIT,
    min_k: float = MIN_K_FRACTION,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Compute memorization, utility, membership, extraction and exposure for a model pair.

    ``extraction_records`` caps the records per split that greedy extraction tries (0 skips
    extraction); ``min_k`` is the fraction of tokens the Min-K% attacks average.
    """
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
                # Only the fine-tuned model is attacked, so only it needs the Min-K%++ moments.
                scores[name, split] = score_records(
                    model, records, pad_token_id=pad, distribution=name == "finetuned", progress=bar
                )
    memorization = memorization_report(scores, seed=seed)
    membership = membership_report(
        {s: scores["finetuned", s] for s in splits},
        {s: scores["base", s] for s in splits},
        records=splits,
        k=min_k,
        seed=seed,
    )
    extraction = None
    if extraction_records:
        extraction = extraction_report(
            finetuned,
            base,
            tokenizer,
            train=splits["train"],
            test=splits["test"],
            canaries=dataset.canaries,
            train_texts=[record.text for record in dataset.train],
            max_records=extraction_records,
            max_length=max_length,
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
        "extraction": extraction,
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


def _measure_suffix(name: str) -> str:
    """Lower-case ``name`` and replace every run of other characters with one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def flat_measures(results: dict[str, Any]) -> dict[str, float | None]:
    """Flatten the numbers a frontier plots under stable snake_case names with units.

    NLL measures are in nats per token, exposures in bits; AUC, TPR and shares are fractions.
    """
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
        "mia_sensitive_auc": (mia["sensitive_tokens"].get("loss") or {}).get("auc"),
        "mia_tpr_at_1pct_fpr": mia["all_tokens"]["loss"]["tpr_at_1pct_fpr"],
    }
    for kind, values in sorted(mem.get("by_kind", {}).items()):
        measures[f"sensitive_gap_{_measure_suffix(kind)}"] = values["gap"]
    for token_set, prefix in (("all_tokens", "mia"), ("sensitive_tokens", "mia_sensitive")):
        for attack in ATTACKS:
            metrics = mia.get(token_set, {}).get(attack)
            if not metrics:
                continue
            for key in ("auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"):
                measures[f"{prefix}_{attack}_{key}"] = metrics[key]
    measures.update(_extraction_measures(results.get("extraction")))
    exposure = results.get("exposure")
    if exposure:
        for reps, value in exposure["mean_by_repetitions"].items():
            key = "exposure_reference" if reps == "0" else f"exposure_r{reps}"
            measures[key] = value
        for reps, value in exposure.get("excess_over_reference", {}).items():
            measures[f"exposure_excess_r{reps}"] = value
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


def _extraction_measures(extraction: dict[str, Any] | None) -> dict[str, float | None]:
    if not extraction:
        return {}
    measures: dict[str, float | None] = {}
    for model, prefix in (("finetuned", "extraction"), ("base", "extraction_base")):
        for split in ("train", "test"):
            entry = (extraction.get(model) or {}).get(split)
            if entry is not None:
                measures[f"{prefix}_{split}_share"] = entry["share"]
    canaries = (extraction.get("finetuned") or {}).get("canaries") or {}
    for reps, entry in canaries.get("by_repetitions", {}).items():
        key = "reference" if reps == "0" else f"r{reps}"
        measures[f"extraction_canary_{key}_share"] = entry["share"]
    taxonomy = extraction.get("taxonomy")
    if taxonomy:
        measures["memorized_spans"] = taxonomy["memorized"]
        for category, share in taxonomy["shares"].items():
            measures[f"{category}_share"] = share
    return measures


def evaluate_run(
    run_dir: Path,
    *,
    data: Path | None = None,
    max_records: int | None = None,
    exposure_method: str = "auto",
    exposure_samples: int = 5000,
    extraction_records: int = MAX_RECORDS_PER_SPLIT,
    min_k: float = MIN_K_FRACTION,
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
        extraction_records=extraction_records,
        min_k=min_k,
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
    return _finish(results, run_dir / "results.json", started)


def _finish(results: dict[str, Any], path: Path, started: float) -> dict[str, Any]:
    results["environment"] = {"packages": package_versions(), "hardware": hardware()}
    results["eval_time_s"] = time.perf_counter() - started
    results["schema_version"] = SCHEMA_VERSION
    results["measures"] = flat_measures(results)
    atomic_write_json(path, _json_safe(results))
    return results


def _load_any(path: str, base: str) -> torch.nn.Module:
    """Load a model folder, or a LoRA adapter folder merged into ``base``."""
    if (Path(path) / "adapter_config.json").exists():
        return load_merged_adapter(load_model(base), path).eval()
    return load_model(path)


def _pair_tokenizer(model: str, base: str):
    """Load the fine-tuned model's tokenizer and check that the base uses the same vocabulary.

    An adapter folder without a tokenizer uses the base's. Every measure compares the two
    models token by token, so their vocabularies must match.
    """
    try:
        tokenizer = load_tokenizer(model)
    except ModelLoadError:
        if not (Path(model) / "adapter_config.json").exists():
            raise
        tokenizer = load_tokenizer(base)
    try:
        base_tokenizer = load_tokenizer(base)
    except ModelLoadError:
        logger.warning("no tokenizer in %s; assuming it matches the fine-tuned model's", base)
        return tokenizer
    if base_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"the tokenizers of {model} and {base} have different vocabularies; the base "
            "must share the fine-tuned model's tokenizer, since every measure compares the "
            "two models token by token"
        )
    return tokenizer


def default_max_length(model: torch.nn.Module, tokenizer, cap: int = 512) -> int:
    """Return the smallest of ``cap`` and the model's and tokenizer's token limits."""
    limits = [cap, getattr(model.config, "max_position_embeddings", None)]
    limits.append(getattr(tokenizer, "model_max_length", None))
    return min(int(limit) for limit in limits if limit)


def evaluate_pair(
    model: str,
    base: str,
    data: Path,
    out: Path,
    *,
    max_length: int | None = None,
    max_records: int | None = None,
    exposure_method: str = "auto",
    exposure_samples: int = 5000,
    extraction_records: int = MAX_RECORDS_PER_SPLIT,
    min_k: float = MIN_K_FRACTION,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate any fine-tuned model against its base and write ``out/results.json``.

    ``model`` is a Hugging Face model folder (or a LoRA adapter folder for ``base``) that
    privft need not have trained. ``max_length`` defaults to ``default_max_length``. Training
    cost and privacy spending are unknown here, so those measures are None.
    """
    started = time.perf_counter()
    dataset = load_dataset_dir(Path(data))
    tokenizer = _pair_tokenizer(model, base)
    finetuned = _load_any(model, base)
    base_model = load_model(base)
    results = evaluate_models(
        finetuned,
        base_model,
        tokenizer,
        dataset,
        max_length=max_length or default_max_length(finetuned, tokenizer),
        max_records=max_records,
        exposure_method=exposure_method,
        exposure_samples=exposure_samples,
        extraction_records=extraction_records,
        min_k=min_k,
        seed=seed,
        show_progress=show_progress,
    )
    results["cost"] = {}
    results["privacy"] = None
    results["run"] = {
        "run_dir": str(out),
        "name": Path(out).name,
        "recipe": None,
        "model": model,
        "model_path": resolve_model_path(model),
        "base": base,
        "data": str(data),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    return _finish(results, Path(out) / "results.json", started)


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) with None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
