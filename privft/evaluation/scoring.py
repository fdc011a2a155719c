"""Teacher-forced per-token scores, batched, without gradients and padding-aware.

Alignment: the logit at position i scores token i + 1, so a record of T tokens yields T - 1
scores; position 0 (the start token) is never a target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from privft.data.encoding import CausalLMCollator, EncodedRecord


@dataclass
class TokenScores:
    """Scores of one record's target tokens (positions 1..T-1)."""

    record_id: str
    nll: np.ndarray  # [T-1] float64, nats
    correct: np.ndarray  # [T-1] bool, top-1 prediction equals the target
    labels: list[str | None]  # [T-1] PII kind of each target token, None if not sensitive

    @property
    def sensitive(self) -> np.ndarray:
        return np.array([label is not None for label in self.labels], dtype=bool)

    @property
    def mean_nll(self) -> float:
        return float(self.nll.mean()) if len(self.nll) else float("nan")


@torch.no_grad()
def score_records(
    model: torch.nn.Module,
    records: Sequence[EncodedRecord],
    *,
    pad_token_id: int,
    batch_size: int = 32,
    progress=None,
) -> list[TokenScores]:
    """Score every target token of every record; records are batched by length to cut padding."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = CausalLMCollator(pad_token_id)
    order = sorted(range(len(records)), key=lambda i: len(records[i].input_ids))
    results: list[TokenScores | None] = [None] * len(records)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([records[i] for i in chunk])
        batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = batch["input_ids"][:, 1:]
        nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        correct = log_probs.argmax(-1) == targets
        for row, index in enumerate(chunk):
            n = len(records[index].input_ids) - 1
            results[index] = TokenScores(
                record_id=records[index].record_id,
                nll=nll[row, :n].double().numpy(),
                correct=correct[row, :n].numpy(),
                labels=list(records[index].labels[1:]),
            )
        if progress is not None:
            progress.update(len(chunk))
    model.train(was_training)
    return results  # type: ignore[return-value]
