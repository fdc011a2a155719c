"""DP-SGD and DP-LoRA training end to end on tiny models: ledger, updates, edge cases, seeds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_model, write_tiny_data
from safetensors.torch import load_file

import privft.recipes.trainer as trainer_module
from privft.config import DPSettings, LoRASettings, TrainConfig
from privft.data.encoding import CausalLMCollator, EncodedRecord, per_sample_loss
from privft.privacy.accounting import PrivacyPlan, compute_epsilon
from privft.privacy.engine import make_private_training
from privft.privacy.sampling import PoissonBatchSampler
from privft.recipes import get_recipe, train
from privft.recipes.adapters import add_lora
from privft.recipes.trainer import Trainer

ARCHS = ("gpt_neox", "gpt2", "llama")
DP_RECIPES = ("dp_sgd", "dp_lora")
NUM_TRAIN = 26  # write_tiny_data's 24 records plus the canary inserted twice
BATCH_SIZE = 4
STEPS = 3
TARGET_EPSILON = 4.0

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("dp-data"))


def dp_config(out: Path, data: Path, model: Path, recipe: str, *, steps: int = STEPS,
              **changes) -> TrainConfig:
    """Build a DP config of ``steps`` batches of 4 expected records, in physical chunks of 2."""
    dp = changes.pop("dp", DPSettings(epsilon=TARGET_EPSILON))
    return TrainConfig(recipe=recipe, data=str(data), out=str(out), model=str(model),
                       epochs=steps * BATCH_SIZE / NUM_TRAIN, batch_size=BATCH_SIZE,
                       physical_batch_size=2, max_length=32, log_every=1, warmup_ratio=0.0,
                       learning_rate=1e-2, lora=LoRASettings(r=2), dp=dp, **changes)


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory, tiny_model_dir, data_dir):
    """Return a function that trains each (recipe, arch, seed, copy) once and returns its folder."""
    runs: dict[tuple, Path] = {}

    def run(recipe: str, arch: str, *, seed: int = 0, copy: int = 0) -> Path:
        key = (recipe, arch, seed, copy)
        if key not in runs:
            out = tmp_path_factory.mktemp(f"{recipe}-{arch}-s{seed}-c{copy}")
            config = dp_config(out, data_dir, tiny_model_dir(arch), recipe, seed=seed)
            train(config, show_progress=False)
            runs[key] = out
        return runs[key]

    return run


def read_ledger(run_dir: Path) -> dict:
    return json.loads((run_dir / "privacy.json").read_text(encoding="utf-8"))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """Load the trained weights: the whole model for dp_sgd, the adapter for dp_lora."""
    folder = run_dir / "checkpoint"
    name = "adapter_model.safetensors"
    return load_file(folder / name if (folder / name).exists() else folder / "model.safetensors")


def recomputed_epsilon(ledger: dict) -> float:
    return compute_epsilon(accountant=ledger["accountant"],
                           noise_multiplier=ledger["noise_multiplier"],
                           sample_rate=ledger["sample_rate"], steps=ledger["steps"],
                           delta=ledger["delta"])


RUNS = [(recipe, arch) for recipe in DP_RECIPES for arch in ARCHS]


@pytest.mark.parametrize(("recipe", "arch"), RUNS)
def test_ledger_epsilon_within_target(dp_run, recipe, arch):
    ledger = read_ledger(dp_run(recipe, arch))

    assert ledger["target_epsilon"] == TARGET_EPSILON
    assert ledger["epsilon"] <= TARGET_EPSILON


@pytest.mark.parametrize(("recipe", "arch"), RUNS)
def test_ledger_matches_recomputation(dp_run, recipe, arch):
    ledger = read_ledger(dp_run(recipe, arch))

    assert ledger["epsilon"] == pytest.approx(recomputed_epsilon(ledger), rel=1e-12)
    assert ledger["sample_rate"] == BATCH_SIZE / NUM_TRAIN
    assert ledger["num_records"] == NUM_TRAIN


@pytest.mark.parametrize(("recipe", "arch"), RUNS)
def test_ledger_steps_match_plan(dp_run, recipe, arch):
    ledger = read_ledger(dp_run(recipe, arch))

    assert ledger["planned_steps"] == STEPS
    assert ledger["steps"] == ledger["planned_steps"]
    assert ledger["history"] == [[ledger["noise_multiplier"], ledger["sample_rate"], STEPS]]


@pytest.mark.parametrize("arch", ARCHS)
def test_dp_sgd_moves_every_weight(dp_run, tiny_model_dir, arch):
    initial = load_file(tiny_model_dir(arch) / "model.safetensors")
    trained = final_weights(dp_run("dp_sgd", arch))

    assert trained.keys() == initial.keys()
    unchanged = [name for name in initial if torch.equal(trained[name], initial[name])]
    assert unchanged == []


@pytest.mark.parametrize("arch", ARCHS)
def test_dp_lora_moves_every_b(dp_run, arch):
    trained = final_weights(dp_run("dp_lora", arch))
    b_names = [name for name in trained if "lora_B" in name]

    assert b_names, "the adapter has no lora_B matrices"
    still_zero = [name for name in b_names if trained[name].abs().max() == 0]
    assert still_zero == []


def shrink_sample_rate(monkeypatch, sample_rate: float) -> None:
    """Make the trainer plan with ``sample_rate`` in place of batch_size / N, all else equal."""
    real_plan = trainer_module.plan_privacy

    def plan(*args, **kwargs) -> PrivacyPlan:
        return dataclasses.replace(real_plan(*args, **kwargs), sample_rate=sample_rate)

    monkeypatch.setattr(trainer_module, "plan_privacy", plan)


def batch_sizes(sample_rate: float, seed: int, steps: int) -> list[int]:
    sampler = PoissonBatchSampler(num_records=NUM_TRAIN, sample_rate=sample_rate, seed=seed)
    return [len(sampler.indices(step)) for step in range(steps)]



def test_mostly_empty_batches_train(monkeypatch, tmp_path, tiny_model_dir, data_dir):
    sample_rate, seed, steps = 0.01, 0, 6
    sizes = batch_sizes(sample_rate, seed, steps)
    assert sizes.count(0) > steps // 2, f"seed {seed} draws too few empty batches: {sizes}"
    assert max(sizes) > 0, f"seed {seed} draws no record at all: {sizes}"
    shrink_sample_rate(monkeypatch, sample_rate)
    config = dp_config(tmp_path / "run", data_dir, tiny_model_dir("gpt_neox"), "dp_sgd",
                       steps=steps, seed=seed, dp=DPSettings(epsilon=None, noise_multiplier=1.0))

    info = train(config, show_progress=False)
    ledger = read_ledger(tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]

    assert info.status == "completed"
    assert ledger["steps"] == steps
    assert ledger["history"] == [[1.0, sample_rate, steps]]
    assert [row["batch_records"] for row in rows] == sizes
    assert [row["loss"] is None for row in rows] == [size == 0 for size in sizes]


def test_noise_alone_moves_weights(monkeypatch, tmp_path, tiny_model_dir, data_dir):
    sample_rate, seed, steps = 1e-6, 0, 3
    assert batch_sizes(sample_rate, seed, steps) == [0] * steps
    shrink_sample_rate(monkeypatch, sample_rate)
    model_dir = tiny_model_dir("gpt_neox")
    config = dp_config(tmp_path / "run", data_dir, model_dir, "dp_sgd", steps=steps, seed=seed,
                       dp=DPSettings(epsilon=None, noise_multiplier=1.0))

    train(config, show_progress=False)
    initial = load_file(model_dir / "model.safetensors")
    trained = final_weights(tmp_path / "run")

    assert read_ledger(tmp_path / "run")["steps"] == steps
    unchanged = [name for name in initial if torch.equal(trained[name], initial[name])]
    assert unchanged == []


@pytest.mark.parametrize("recipe", DP_RECIPES)
def test_optimizer_matches_trainable_tensors(tmp_path, tiny_model_dir, data_dir, recipe):
    config = dp_config(tmp_path / "run", data_dir, tiny_model_dir("gpt_neox"), recipe,
                       dp=DPSettings(epsilon=None, noise_multiplier=1.0))
    trainer = Trainer(config, make_trainable=get_recipe(recipe)(config).make_trainable,
                      show_progress=False)
    trainer._setup()
    trainable = {id(p) for p in trainer.model.parameters() if p.requires_grad}
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}

    assert trainable
    assert in_optimizer == trainable


def tiny_plan(**changes) -> PrivacyPlan:
    values = dict(noise_multiplier=1.0, sample_rate=0.5, steps=1, delta=1e-5, max_grad_norm=1.0,
                  accountant="rdp", target_epsilon=None, expected_batch_size=2, num_records=4)
    return PrivacyPlan(**{**values, **changes})


def test_stale_optimizer_raises():
    model = build_tiny_model("gpt_neox", 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model = add_lora(model, LoRASettings(r=2))

    with pytest.raises(RuntimeError, match="the optimizer contains .* tensors but the model has"):
        make_private_training(model, optimizer, plan=tiny_plan(), grad_sample_mode="hooks",
                              seed=0)


def test_partial_optimizer_raises():
    model = build_tiny_model("gpt_neox", 64)
    optimizer = torch.optim.AdamW(list(model.parameters())[:2], lr=1e-3)

    with pytest.raises(RuntimeError, match="build the optimizer after moving the model"):
        make_private_training(model, optimizer, plan=tiny_plan(), grad_sample_mode="hooks",
                              seed=0)


def test_eval_mode_model_trains():
    model = build_tiny_model("gpt_neox", 64)
    model.eval()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private = make_private_training(model, optimizer, plan=tiny_plan(), grad_sample_mode="hooks",
                                    seed=0)

    assert all(module.training for module in model.modules())
    records = [EncodedRecord("a", [0, 5, 9, 7, 0], [None] * 5),
               EncodedRecord("b", [0, 3, 0], [None] * 3)]
    batch = CausalLMCollator(1)(records)
    labels = batch.pop("labels")
    private.begin_step(0)
    per_sample_loss(private.module(**batch).logits, labels).mean().backward()
    assert all(p.grad_sample is not None for p in model.parameters())
    private.optimizer.step()
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p, before[name])]
    assert unchanged == []
    assert private.steps_taken == 1


def test_same_seed_same_weights(dp_run):
    first, second = dp_run("dp_sgd", "gpt_neox"), dp_run("dp_sgd", "gpt_neox", copy=1)
    first_weights, second_weights = final_weights(first), final_weights(second)

    differing = [name for name in first_weights
                 if not torch.equal(first_weights[name], second_weights[name])]
    assert differing == []
    assert read_ledger(first)["epsilon"] == read_ledger(second)["epsilon"]


def test_other_seed_other_weights(dp_run):
    first, other = dp_run("dp_sgd", "gpt_neox"), dp_run("dp_sgd", "gpt_neox", seed=1)
    first_weights, other_weights = final_weights(first), final_weights(other)

    equal = [name for name in first_weights
             if torch.equal(first_weights[name], other_weights[name])]
    assert equal == []


def test_chunk_size_keeps_update(tmp_path, tiny_model_dir, data_dir):
    """Noise is added once per logical batch, so physical chunking must not change the result."""
    model_dir = tiny_model_dir("gpt_neox")
    dp = DPSettings(epsilon=None, noise_multiplier=1.0)
    results = {}
    for chunk in (1, 8):
        out = tmp_path / f"chunk-{chunk}"
        config = dp_config(out, data_dir, model_dir, "dp_sgd", dp=dp)
        train(dataclasses.replace(config, physical_batch_size=chunk), show_progress=False)
        results[chunk] = final_weights(out)

    for name, tensor in results[8].items():
        torch.testing.assert_close(results[1][name], tensor, atol=1e-5, rtol=1e-5,
                                   msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("mode", ["hooks", "functorch", "ghost"])
def test_seeded_rerun_is_identical_in_every_mode(tmp_path, tiny_model_dir, data_dir, mode):
    """Two runs with one seed and config end with the same bits, whatever the gradient mode."""
    runs = []
    for copy in range(2):
        config = dp_config(tmp_path / f"run{copy}", data_dir, tiny_model_dir("gpt_neox"), "dp_sgd",
                           dp=DPSettings(epsilon=None, noise_multiplier=1.0,
                                         grad_sample_mode=mode))
        train(config, show_progress=False)
        runs.append(tmp_path / f"run{copy}")
    first, second = (final_weights(run) for run in runs)
    differing = [name for name in first if not torch.equal(first[name], second[name])]
    assert differing == []
    assert read_ledger(runs[0])["grad_sample_mode"] == mode
    assert read_ledger(runs[0])["epsilon"] == read_ledger(runs[1])["epsilon"]
