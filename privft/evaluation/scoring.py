"""Teacher-forced per-token scores, batched, without gradients and padding-aware.

Alignment: the logit at position i scores token i + 1, so a record of T tokens yields T - 1
scores; position 0 (the start token) is never a target.

Besides each target's log-probability, scoring keeps the mean and variance of the log-probability
under the model's own next-token distribution at each position, which Min-K%++ needs. Both come
from the logits of the real (unpadded) positions only. With ``y = z - max(z)``,
``p = softmax(z)`` and ``S = sum(exp(y))``, ``E_p[log p] = E_p[y] - log S`` and
``Var_p[log p] = Var_p[y]``, because log p and y differ by a constant at each position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from privft.data.encoding import CausalLMCollator, EncodedRecord

# Rows of logits reduced at a time: a whole record at the default 256-token max_length. Fewer,
# larger operations matter on a busy CPU, where each parallel operation waits for all threads.
ROWS_PER_CHUNK = 256


@dataclass
class TokenScores:
    """Scores of one record's target tokens (positions 1..T-1)."""

    record_id: str
    nll: np.ndarray  # [T-1] float64, nats
    correct: np.ndarray  # [T-1] bool, the target has the highest logit (ties count)
    labels: list[str | None]  # [T-1] PII kind of each target token, None if not sensitive
    # [T-1] float64: mean and variance of log p(v) over the vocabulary under p itself, at the
    # position that predicts each target. None when scored without distribution statistics.
    logp_mean: np.ndarray | None = None
    logp_var: np.ndarray | None = None

    @property
    def sensitive(self) -> np.ndarray:
        return np.array([label is not None for label in self.labels], dtype=bool)

    @property
    def mean_nll(self) -> float:
        return float(self.nll.mean()) if len(self.nll) else float("nan")


def target_statistics(
    logits: torch.Tensor, targets: torch.Tensor, *, distribution: bool = True
) -> dict[str, torch.Tensor]:
    """Compute each row's target log-probability, top-1 hit and log-probability moments.

    ``logits`` is [N, V] and ``targets`` [N]. Returns ``logp``, ``correct`` and, when
    ``distribution`` is set, ``logp_mean`` and ``logp_var``, all of shape [N] and float32
    (``correct`` bool).
    """
    out: dict[str, list[torch.Tensor]] = {"logp": [], "correct": []}
    if distribution:
        out["logp_mean"], out["logp_var"] = [], []
    for start in range(0, len(logits), ROWS_PER_CHUNK):
        z = logits[start : start + ROWS_PER_CHUNK].float()
        target = targets[start : start + ROWS_PER_CHUNK, None]
        peak = z.amax(dim=-1, keepdim=True)
        shifted = z - peak
        exp = shifted.exp()
        total = exp.sum(dim=-1)
        log_total = total.log()
        target_shifted = shifted.gather(-1, target).squeeze(-1)
        out["logp"].append(target_shifted - log_total)
        out["correct"].append(target_shifted >= 0)
        if distribution:
            weighted = exp.mul_(shifted)  # exp is not needed after this
            first = weighted.sum(dim=-1) / total
            second = weighted.mul_(shifted).sum(dim=-1) / total
            out["logp_mean"].append(first - log_total)
            out["logp_var"].append((second - first.square()).clamp_(min=0.0))
    if not len(logits):
        return {key: logits.new_zeros(0) for key in out}
    return {key: torch.cat(values) for key, values in out.items()}


@torch.no_grad()
def score_records(
    model: torch.nn.Module,
    records: Sequence[EncodedRecord],
    *,
    pad_token_id: int,
    batch_size: int = 32,
    distribution: bool = True,
    progress=None,
) -> list[TokenScores]:
    """Score every target token of every record; records are batched by length to cut padding.

    Only real target positions reach the softmax: each record's rows of the batch logits are
    reduced in place, without copying them and without touching its padding.
    ``distribution=False`` skips the log-probability moments (Min-K%++ inputs).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = CausalLMCollator(pad_token_id)
    order = sorted(range(len(records)), key=lambda i: len(records[i].input_ids))
    results: list[TokenScores | None] = [None] * len(records)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = collate([records[i] for i in chunk])
            batch.pop("labels")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            for row, index in enumerate(chunk):
                # Padding is on the right, so a record's n - 1 targets are its first n - 1 rows.
                ids = records[index].input_ids
                stats = target_statistics(
                    logits[row, : len(ids) - 1],
                    torch.tensor(ids[1:], device=logits.device),
                    distribution=distribution,
                )
                stats = {key: value.cpu() for key, value in stats.items()}
                results[index] = TokenScores(
                    record_id=records[index].record_id,
                    nll=-stats["logp"].double().numpy(),
                    correct=stats["correct"].numpy(),
                    labels=list(records[index].labels[1:]),
                    logp_mean=stats["logp_mean"].double().numpy() if distribution else None,
                    logp_var=stats["logp_var"].double().numpy() if distribution else None,
                )
            if progress is not None:
                progress.update(len(chunk))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]
