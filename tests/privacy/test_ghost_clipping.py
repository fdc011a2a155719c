"""Ghost clipping agrees with per-sample hooks and refuses tied weights; auto picks a mode."""

import pytest
import torch
from transformers import AutoTokenizer

from privft.config import DPSettings
from privft.data.encoding import CausalLMCollator, EncodedRecord, per_sample_loss
from privft.models import load_model
from privft.privacy import plan_privacy
from privft.privacy.engine import (
    FUNCTORCH_MIN_PARAMETERS,
    UnsupportedModelError,
    choose_grad_sample_mode,
    make_private_training,
)


def one_update(folder, mode: str) -> dict[str, torch.Tensor]:
    """One DP step without noise and with a small clipping bound; return the new weights."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_model(str(folder))
    settings = DPSettings(epsilon=None, noise_multiplier=1e-9, max_grad_norm=0.05)
    plan = plan_privacy(settings, num_records=10, batch_size=3, epochs=1)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    private = make_private_training(model, optimizer, plan=plan, grad_sample_mode=mode, seed=0)
    texts = ["Hi Dana, your order shipped.", "Call 555 0134.", "The code is 482913 today."]
    items = [
        EncodedRecord(str(i), [0, *tokenizer.encode(t)], [None] * (1 + len(tokenizer.encode(t))))
        for i, t in enumerate(texts)
    ]
    batch = CausalLMCollator(tokenizer.pad_token_id)(items)
    labels = batch.pop("labels")
    private.begin_step(0)
    # Two physical chunks of one logical batch, as the trainer runs them.
    for number, rows in enumerate(([0, 1], [2])):
        chunk = {k: v[rows] for k, v in batch.items()}
        losses = per_sample_loss(private.module(**chunk).logits, labels[rows])
        private.backward(losses)
        private.optimizer.signal_skip_step(do_skip=number == 0)
        private.optimizer.step()
        private.optimizer.zero_grad(set_to_none=True)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch", ["gpt_neox", "llama"])
def test_ghost_matches_hooks(tiny_model_dir, arch):
    folder = tiny_model_dir(arch)
    before = {n: p.detach() for n, p in load_model(str(folder)).named_parameters()}
    hooks = one_update(folder, "hooks")
    ghost = one_update(folder, "ghost")
    moved = max(float((hooks[n] - before[n]).abs().max()) for n in before)
    assert moved > 1e-4
    for name, value in hooks.items():
        torch.testing.assert_close(ghost[name], value, atol=1e-5, rtol=1e-4, msg=name)


def test_ghost_rejects_tied_embeddings(tiny_model_dir):
    model = load_model(str(tiny_model_dir("gpt2")))
    with pytest.raises(UnsupportedModelError, match="tied trainable parameters"):
        choose_grad_sample_mode("ghost", model)


def test_auto_picks_hooks_on_cpu(tiny_model_dir):
    model = load_model(str(tiny_model_dir("gpt_neox")))
    assert choose_grad_sample_mode("auto", model) == "hooks"


def meta_llama(hidden: int) -> torch.nn.Module:
    """A Llama-shaped model on the meta device: parameter counts without memory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4)
    with torch.device("meta"):
        return LlamaForCausalLM(config)


def train_only_attention_queries(model: torch.nn.Module) -> None:
    for name, param in model.named_parameters():
        param.requires_grad = name.endswith("q_proj.weight")


def test_auto_functorch_adapters_large_model():
    large = meta_llama(1024)
    assert sum(p.numel() for p in large.parameters()) >= FUNCTORCH_MIN_PARAMETERS
    train_only_attention_queries(large)
    assert choose_grad_sample_mode("auto", large) == "functorch"


def test_auto_hooks_full_large_model():
    assert choose_grad_sample_mode("auto", meta_llama(1024)) == "hooks"


def test_auto_hooks_adapters_small_model():
    small = meta_llama(64)
    assert sum(p.numel() for p in small.parameters()) < FUNCTORCH_MIN_PARAMETERS
    train_only_attention_queries(small)
    assert choose_grad_sample_mode("auto", small) == "hooks"


def test_explicit_mode_wins_over_auto_rule():
    large = meta_llama(1024)
    train_only_attention_queries(large)
    assert choose_grad_sample_mode("hooks", large) == "hooks"


def test_unsupported_layer_error_names_module(tiny_model_dir):
    model = load_model(str(tiny_model_dir("gpt_neox")))
    model.gpt_neox.layers[1].mlp.act = torch.nn.BatchNorm1d(64)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    plan = plan_privacy(DPSettings(), num_records=100, batch_size=10, epochs=1)
    with pytest.raises(UnsupportedModelError) as raised:
        make_private_training(model, optimizer, plan=plan, grad_sample_mode="hooks", seed=0)
    message = str(raised.value)
    assert "gpt_neox.layers.1.mlp.act (BatchNorm1d)" in message
    assert "dp_lora" in message
