"""Per-sample gradients from privft's opacus wrapping against a one-example-at-a-time loop.

Every tiny architecture is checked with all weights trainable and with LoRA adapters, in both
of opacus's grad_sample modes, on a right-padded batch of three sequences of different lengths.
"""

from __future__ import annotations

import pytest
import torch
from conftest import build_tiny_model

from privft.config import LoRASettings
from privft.data.encoding import IGNORE_INDEX, CausalLMCollator, EncodedRecord, per_sample_loss
from privft.privacy.accounting import PrivacyPlan
from privft.privacy.engine import make_private_training
from privft.recipes.adapters import add_lora

ARCHS = ("gpt_neox", "gpt2", "llama")
MODES = ("hooks", "functorch")
VOCAB_SIZE = 64
PAD_ID = 1
LENGTHS = (9, 4, 6)
EXTRA_PADDING = 5
# NOTE: per_sample_loss computes the cross-entropy in float32 even for float64 logits, and
# Llama's RMSNorm normalises in float32 as well, so float64 runs agree only to float32 rounding.
# Wrong per-sample gradients are off by orders of magnitude more than this.
ATOL = 1e-6
RTOL = 1e-6

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def make_model(arch: str, lora: bool) -> torch.nn.Module:
    """Build a float64 tiny model in train mode with dropout off and, for LoRA, nonzero B."""
    model = build_tiny_model(arch, VOCAB_SIZE)
    if lora:
        model = add_lora(model, LoRASettings(r=2))
        # B starts at zero, which would make every gradient of A zero and the check vacuous.
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    model.double()
    # GPT-2 configs default to dropout 0.1, which would make every forward pass differ.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    return model


def make_records() -> list[EncodedRecord]:
    generator = torch.Generator().manual_seed(11)
    records = []
    for number, length in enumerate(LENGTHS):
        ids = torch.randint(2, VOCAB_SIZE, (length,), generator=generator).tolist()
        records.append(EncodedRecord(f"r{number}", ids, [None] * length))
    return records


def pad_batch(batch: dict[str, torch.Tensor], extra: int) -> dict[str, torch.Tensor]:
    """Append ``extra`` padding columns, as a longer record in the batch would."""
    rows, length = batch["input_ids"].shape
    fill = {"input_ids": PAD_ID, "attention_mask": 0, "labels": IGNORE_INDEX}
    padded = {}
    for key, value in fill.items():
        tail = torch.full((rows, extra), value, dtype=torch.long)
        padded[key] = torch.cat([batch[key], tail], dim=1)
    positions = torch.arange(length + extra, dtype=torch.long)
    padded["position_ids"] = positions.repeat(rows, 1)
    return padded


def trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def loop_gradients(model: torch.nn.Module, records: list[EncodedRecord]) -> list[dict]:
    """Compute the gradient of each example's own loss, alone and without padding."""
    collate = CausalLMCollator(PAD_ID)
    gradients = []
    for record in records:
        batch = collate([record])
        labels = batch.pop("labels")
        model.zero_grad(set_to_none=True)
        per_sample_loss(model(**batch).logits, labels).sum().backward()
        gradients.append({name: p.grad.clone() for name, p in trainable(model).items()})
    model.zero_grad(set_to_none=True)
    return gradients


def wrap(model: torch.nn.Module, mode: str):
    plan = PrivacyPlan(noise_multiplier=1.0, sample_rate=0.5, steps=1, delta=1e-5,
                       max_grad_norm=1.0, accountant="rdp", target_epsilon=None,
                       expected_batch_size=len(LENGTHS), num_records=2 * len(LENGTHS))
    optimizer = torch.optim.SGD(trainable(model).values(), lr=0.1)
    return make_private_training(model, optimizer, plan=plan, grad_sample_mode=mode, seed=0)


def batch_gradients(private, model, batch: dict[str, torch.Tensor]):
    """Return the per-sample losses and gradients of one batch through the wrapped model."""
    batch = dict(batch)
    labels = batch.pop("labels")
    losses = per_sample_loss(private.module(**batch).logits, labels)
    losses.mean().backward()
    samples = {name: p.grad_sample.detach().clone() for name, p in trainable(model).items()}
    private.optimizer.zero_grad(set_to_none=True)
    return losses.detach(), samples


CASES = [(arch, lora, mode) for arch in ARCHS for lora in (False, True) for mode in MODES]
CASE_IDS = [f"{arch}-{'lora' if lora else 'full'}-{mode}" for arch, lora, mode in CASES]


@pytest.mark.parametrize(("arch", "lora", "mode"), CASES, ids=CASE_IDS)
def test_grad_sample_matches_loop(arch, lora, mode):
    model = make_model(arch, lora)
    records = make_records()
    expected = loop_gradients(model, records)
    private = wrap(model, mode)
    batch = CausalLMCollator(PAD_ID)(records)
    _, samples = batch_gradients(private, model, batch)

    assert samples, "the model has no trainable parameters"
    for name, grad_sample in samples.items():
        assert grad_sample.shape[0] == len(records), f"{name}: batch dim {grad_sample.shape}"
        for row, reference in enumerate(expected):
            torch.testing.assert_close(grad_sample[row], reference[name], atol=ATOL, rtol=RTOL,
                                       msg=lambda m, n=name, r=row: f"{n}[{r}]: {m}")


@pytest.mark.parametrize(("arch", "lora", "mode"), CASES, ids=CASE_IDS)
def test_extra_padding_changes_nothing(arch, lora, mode):
    model = make_model(arch, lora)
    private = wrap(model, mode)
    batch = CausalLMCollator(PAD_ID)(make_records())
    losses, samples = batch_gradients(private, model, batch)
    padded_losses, padded_samples = batch_gradients(private, model,
                                                    pad_batch(batch, EXTRA_PADDING))

    torch.testing.assert_close(padded_losses, losses, atol=ATOL, rtol=RTOL)
    for name, grad_sample in samples.items():
        assert padded_samples[name].shape == grad_sample.shape, name
        torch.testing.assert_close(padded_samples[name], grad_sample, atol=ATOL, rtol=RTOL,
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_collator_positions_per_row():
    batch = CausalLMCollator(PAD_ID)(make_records())
    rows, length = batch["input_ids"].shape

    assert batch["position_ids"].shape == (rows, length)
    assert torch.equal(batch["position_ids"][1], torch.arange(length))


def test_float64_loss_keeps_precision():
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 6, 40, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 40, (2, 6), generator=generator)
    labels[:, 0] = IGNORE_INDEX
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = log_probs.gather(-1, labels[:, 1:].unsqueeze(-1)).squeeze(-1)
    expected = -picked.mean(dim=1)

    losses = per_sample_loss(logits, labels)

    torch.testing.assert_close(losses, expected, atol=1e-12, rtol=0.0)
