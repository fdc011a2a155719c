"""Privacy dynamics: cheap measures recorded during training into ``<run>/dynamics.jsonl``.

With ``eval_every`` N > 0 the trainer records one row before the first step (step 0, when the
run starts fresh), every N steps and after the last step. Each row contains the memorization
NLL gaps of the first ``DYNAMICS_MAX_RECORDS`` training and test records and the mean canary
log-perplexity per repetition count, so a run's privacy trajectory can be plotted against its
steps. The base model is scored once, when the recorder starts.

A measurement leaves training exactly as it was: it runs under ``torch.no_grad()`` in eval
mode, restores train mode, pauses opacus's per-sample hooks, and forks the random number
generators so that the training draws that follow are unchanged. Its time counts towards the
run's ``train_time_s``; each row reports it as ``eval_time_s``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from privft.data import load_dataset_dir
from privft.data.encoding import encode_records
from privft.evaluation.exposure import sampled_log_perplexity
from privft.evaluation.memorization import ClassTable
from privft.evaluation.scoring import score_records
from privft.models import load_model
from privft.storage import append_jsonl, atomic_write_text

DYNAMICS_FILE = "dynamics.jsonl"
DYNAMICS_MAX_RECORDS = 64


@contextlib.contextmanager
def measuring(model: torch.nn.Module, wrapper: torch.nn.Module | None = None):
    """Run the body in eval mode, without gradients, hooks or random draws leaking out.

    ``wrapper`` is the module training calls (opacus's GradSampleModule under DP); its
    per-sample hooks are disabled for the body and re-enabled after if they were on.
    """
    was_training = model.training
    hooks_were_on = bool(getattr(wrapper, "hooks_enabled", False))
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        if hooks_were_on:
            wrapper.disable_hooks()
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)
            if hooks_were_on:
                wrapper.enable_hooks()


def _truncate(path: Path, step: int) -> None:
    """Keep only the rows up to ``step`` (a resumed run rewrites the rest)."""
    if not path.exists():
        return
    remaining = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    atomic_write_text(path, "".join(line + "\n" for line in remaining))


class DynamicsRecorder:
    """Record memorization gaps and canary log-perplexity of a model during training."""

    def __init__(
        self,
        config,
        tokenizer,
        model: torch.nn.Module,
        *,
        wrapper: torch.nn.Module | None = None,
        start_step: int = 0,
        max_records: int = DYNAMICS_MAX_RECORDS,
    ):
        self.path = Path(config.out) / DYNAMICS_FILE
        self.tokenizer = tokenizer
        self.model = model
        self.wrapper = wrapper
        self.device = next(model.parameters()).device
        dataset = load_dataset_dir(Path(config.data))
        splits = {"train": dataset.train_plain[:max_records], "test": dataset.test[:max_records]}
        self.encoded = {
            split: encode_records(records, tokenizer, max_length=config.max_length)
            for split, records in splits.items()
        }
        self.canaries = dataset.canaries
        _truncate(self.path, start_step)
        with measuring(model, wrapper):
            base = load_model(config.model).to(self.device)
            self.base_scores = {split: self._score(base, split) for split in self.encoded}
            del base
        if start_step == 0:
            self.record(0)

    def _score(self, model: torch.nn.Module, split: str):
        return score_records(
            model, self.encoded[split], pad_token_id=self.tokenizer.pad_token_id, distribution=False
        )

    def _canary_log_perplexity(self) -> dict[str, float]:
        """Compute the mean log-perplexity (nats) of the canary secrets per repetition count."""
        by_prefix: dict[str, list] = {}
        for canary in self.canaries:
            by_prefix.setdefault(canary.prefix, []).append(canary)
        by_reps: dict[int, list[float]] = {}
        for prefix, group in by_prefix.items():
            values = sampled_log_perplexity(
                self.model, self.tokenizer, prefix, [c.secret for c in group]
            )
            for canary, value in zip(group, values, strict=True):
                by_reps.setdefault(canary.repetitions, []).append(float(value))
        return {str(k): float(np.mean(v)) for k, v in sorted(by_reps.items())}

    def measure(self) -> dict:
        """Compute the row's measures for the model as it is now."""
        scores = {("base", split): value for split, value in self.base_scores.items()}
        for split in self.encoded:
            scores["finetuned", split] = self._score(self.model, split)
        sensitive = ClassTable(scores, lambda record: record.sensitive).measures()
        plain = ClassTable(scores, lambda record: ~record.sensitive).measures()
        return {
            "sensitive_gap": sensitive["gap"],
            "nonsensitive_gap": plain["gap"],
            "sensitive_gain": sensitive["train_gain"],
            "train_sensitive_nll_nats": sensitive["finetuned_train_nll_nats"],
            "test_sensitive_nll_nats": sensitive["finetuned_test_nll_nats"],
            "train_nonsensitive_nll_nats": plain["finetuned_train_nll_nats"],
            "test_nonsensitive_nll_nats": plain["finetuned_test_nll_nats"],
            "canary_log_perplexity": self._canary_log_perplexity(),
        }

    def record(self, step: int, *, epsilon: float | None = None) -> dict:
        """Measure the model after ``step`` optimizer steps and append the row."""
        started = time.perf_counter()
        with measuring(self.model, self.wrapper):
            values = self.measure()
        row = {"step": step, "epsilon": epsilon, **values}
        row["eval_time_s"] = round(time.perf_counter() - started, 4)
        safe = {
            key: (None if isinstance(value, float) and not np.isfinite(value) else value)
            for key, value in row.items()
        }
        append_jsonl(self.path, safe)
        return safe


def read_dynamics(run_dir: Path) -> list[dict]:
    """Read a run's dynamics rows, ordered by step (empty when it has none)."""
    path = Path(run_dir) / DYNAMICS_FILE
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted(rows, key=lambda row: row["step"])
