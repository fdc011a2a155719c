"""Downstream utility through EleutherAI's lm-evaluation-harness, on task data held locally.

``evaluate_downstream`` wraps an already loaded model in lm-eval's ``HFLM`` and runs
``lm_eval.simple_evaluate`` on the named tasks. lm-eval reads each task's data through the
Hugging Face ``datasets`` library, so the data must be in the local datasets cache, or the tasks
must point at local files (see ``include_path``). The hub is switched off for the call, so
nothing is downloaded. When lm-eval or a task's data is missing, the tasks are skipped: the
returned block gives the reason, and nothing fails.

The block is stored under ``downstream`` in results.json::

    {"status": "completed", "tasks": [...], "scores": {"hellaswag/acc_norm": 0.31, ...},
     "results": {<lm-eval's per-task results>}, "lm_eval_version": "0.4.x", "limit": null,
     "num_fewshot": null, "time_s": 12.3}

or ``{"status": "skipped", "tasks": [...], "reason": "..."}``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INSTALL = 'pip install "privft[lm-eval]"'
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


class DownstreamSkipped(RuntimeError):
    """lm-eval or a task's data is missing here; the message names what to install or copy."""


def parse_tasks(value: str | None) -> list[str]:
    """Split ``hellaswag,arc_easy`` into task names; an empty or missing value gives none."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str | None):
    """lm-eval's task index (slow to build: it reads every task YAML), one per include path."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


@contextlib.contextmanager
def hub_offline():
    """Keep huggingface_hub and datasets off the network inside the block, then restore them.

    Both read their offline switch from the environment once, when first imported, so setting
    the environment variables alone would not reach a process that has imported them already.
    """
    import huggingface_hub.constants as hub_constants

    saved_env = {key: os.environ.get(key) for key in OFFLINE_ENV}
    modules = [hub_constants]
    if importlib.util.find_spec("datasets") is not None:
        import datasets.config

        modules.append(datasets.config)
    saved_flags = [(module, module.HF_HUB_OFFLINE) for module in modules]
    os.environ.update(OFFLINE_ENV)
    for module in modules:
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, flag in saved_flags:
            module.HF_HUB_OFFLINE = flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _require_lm_eval():
    if importlib.util.find_spec("lm_eval") is None:
        raise DownstreamSkipped(
            f"lm-evaluation-harness is not installed; install it with `{INSTALL}`"
        )
    import lm_eval

    return lm_eval


def _task_dict(tasks: list[str], manager) -> dict:
    from lm_eval.tasks import get_task_dict

    known = set(manager.all_tasks)
    unknown = [name for name in tasks if name not in known]
    if unknown:
        raise DownstreamSkipped(
            f"unknown lm-eval task(s) {', '.join(unknown)}; `lm_eval ls tasks` lists the "
            "names, and --lm-eval-include takes a folder of your own task YAML files"
        )
    try:
        return get_task_dict(tasks, manager)
    except Exception as err:  # lm-eval raises many kinds when a dataset cannot be read
        raise DownstreamSkipped(
            f"the data of task(s) {', '.join(tasks)} could not be loaded offline "
            f"({type(err).__name__}: {_first_line(err)}); lm-eval reads it through the "
            "Hugging Face datasets cache: run the tasks once where the hub is reachable and copy "
            "that cache (HF_DATASETS_CACHE) here, or point the task's dataset_path at local files"
        ) from err


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scores(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Flatten ``{task: {"acc,none": 0.3, "acc_stderr,none": ...}}`` to ``task/acc: 0.3``."""
    scores: dict[str, float] = {}
    for task, metrics in sorted(results.items()):
        for key, value in metrics.items():
            metric, _, filter_name = key.partition(",")
            if metric.endswith("_stderr") or metric in ("alias", "sample_len"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            name = metric if filter_name in ("", "none") else f"{metric}_{filter_name}"
            scores[f"{task}/{name}"] = float(value)
    return scores


def evaluate_downstream(
    model,
    tokenizer,
    tasks: list[str],
    *,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 8,
    include_path: Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run lm-eval ``tasks`` on a loaded causal LM, offline; return the ``downstream`` block.

    ``limit`` caps the examples per task (a fraction below 1 is a share). Returns a block with
    status ``skipped`` and the reason when lm-eval or the task data is missing.
    """
    with hub_offline():
        return _evaluate_offline(
            model,
            tokenizer,
            list(tasks),
            limit=limit,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            include_path=include_path,
            seed=seed,
        )


def _evaluate_offline(
    model,
    tokenizer,
    tasks: list[str],
    *,
    limit: int | float | None,
    num_fewshot: int | None,
    batch_size: int,
    include_path: Path | None,
    seed: int,
) -> dict[str, Any]:
    block: dict[str, Any] = {"tasks": list(tasks)}
    started = time.perf_counter()
    try:
        lm_eval = _require_lm_eval()
        from lm_eval.models.huggingface import HFLM

        manager = _task_manager(str(include_path) if include_path else None)
        # Load every task's data up front, so that missing data is a skip, not a later error.
        _task_dict(list(tasks), manager)
    except DownstreamSkipped as err:
        logger.warning("downstream tasks skipped: %s", err)
        return {**block, "status": "skipped", "reason": str(err)}
    was_training = model.training
    model.eval()
    try:
        wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        output = lm_eval.simple_evaluate(
            model=wrapped,
            tasks=list(tasks),
            limit=limit,
            num_fewshot=num_fewshot,
            log_samples=False,
            task_manager=manager,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    finally:
        model.train(was_training)
    results = (output or {}).get("results") or {}
    return {
        **block,
        "status": "completed",
        "scores": _scores(results),
        "results": json.loads(json.dumps(results, default=str)),
        "lm_eval_version": getattr(lm_eval, "__version__", None),
        "limit": limit,
        "num_fewshot": num_fewshot,
        "time_s": time.perf_counter() - started,
    }


def add_downstream(
    results_path: Path,
    model,
    tokenizer,
    tasks: list[str],
    **options: Any,
) -> dict[str, Any]:
    """Run ``evaluate_downstream`` and store its block under ``downstream`` in results.json."""
    from privft.storage import atomic_write_json

    block = evaluate_downstream(model, tokenizer, tasks, **options)
    path = Path(results_path)
    results = json.loads(path.read_text(encoding="utf-8"))
    results["downstream"] = block
    atomic_write_json(path, results)
    return block


def run_downstream(run_dir: Path, tasks: list[str], **options: Any) -> dict[str, Any]:
    """Load a privft run's final model (LoRA merged) and add downstream scores to its results."""
    from privft.config import read_run_config
    from privft.evaluation.runner import load_finetuned
    from privft.models import load_tokenizer

    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(
            f"{results_path} not found; run `privft eval {run_dir}` first, then add the tasks"
        )
    config = read_run_config(run_dir)
    if importlib.util.find_spec("lm_eval") is None:
        model, tokenizer = None, None
    else:
        tokenizer = load_tokenizer(str(run_dir / "checkpoint"))
        model = load_finetuned(run_dir, config.model)
    return add_downstream(results_path, model, tokenizer, tasks, **options)


def pair_downstream(
    model_path: str, base: str, results_path: Path, tasks: list[str], **options: Any
) -> dict[str, Any]:
    """Like ``run_downstream`` for ``privft eval --model``: a model folder or a LoRA adapter."""
    from privft.models import ModelLoadError, load_model, load_tokenizer

    if importlib.util.find_spec("lm_eval") is None:
        return add_downstream(results_path, None, None, tasks, **options)
    adapter = (Path(model_path) / "adapter_config.json").is_file()
    try:
        tokenizer = load_tokenizer(model_path)
    except ModelLoadError:
        if not adapter:
            raise
        tokenizer = load_tokenizer(base)
    if adapter:
        from privft.recipes.adapters import load_merged_adapter

        model = load_merged_adapter(load_model(base), model_path)
    else:
        model = load_model(model_path)
    return add_downstream(results_path, model, tokenizer, tasks, **options)


def describe(block: dict[str, Any]) -> str:
    """Format one console line: the scores, or why the tasks were skipped."""
    if block.get("status") != "completed":
        return f"downstream tasks skipped: {block.get('reason')}"
    scores = ", ".join(f"{key} {value:.4g}" for key, value in block.get("scores", {}).items())
    return f"downstream ({', '.join(block['tasks'])}): {scores or 'no numeric scores'}"
