"""The four recipes on a tiny GPT-NeoX: what trains, the loss, run records, rerun and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_data
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from privft.config import DPSettings, LoRASettings, TrainConfig
from privft.data.encoding import IGNORE_INDEX, CausalLMCollator, EncodedRecord, per_sample_loss
from privft.recipes import RECIPES, get_recipe, train
from privft.recipes.trainer import Trainer

NUM_TRAIN = 26  # write_tiny_data's 24 records plus the canary inserted twice
BATCH_SIZE = 4
STEPS = 5
CHECKPOINT_EVERY = 2
LEARNING_RATE = 1e-2
COST_FIELDS = ("steps", "train_time_s", "time_per_step_s", "peak_memory_mb", "memory_method",
               "tokens_seen", "tokens_per_s", "trainable_params", "total_params",
               "num_train_records", "epsilon", "device")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("recipe-data"))


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("gpt_neox")


def recipe_config(recipe: str, out: Path, data: Path, model: Path) -> TrainConfig:
    """Build a config of STEPS logical batches of 4 records, with a checkpoint every 2 steps."""
    uses_dp = recipe.startswith("dp_")
    # Under DP each step samples BATCH_SIZE / N of the data. Otherwise an epoch is
    # ceil(N / BATCH_SIZE) batches.
    epochs = (STEPS * BATCH_SIZE / NUM_TRAIN if uses_dp
              else STEPS / math.ceil(NUM_TRAIN / BATCH_SIZE))
    return TrainConfig(recipe=recipe, data=str(data), out=str(out), model=str(model),
                       epochs=epochs, batch_size=BATCH_SIZE, physical_batch_size=2,
                       max_length=32, learning_rate=LEARNING_RATE, warmup_ratio=0.0, log_every=1,
                       checkpoint_every=CHECKPOINT_EVERY, lora=LoRASettings(r=2),
                       dp=DPSettings(epsilon=None, noise_multiplier=1.0))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir, model_dir):
    """Return a function that trains each recipe once, uninterrupted, and returns its folder."""
    runs: dict[str, Path] = {}

    def run(recipe: str) -> Path:
        if recipe not in runs:
            out = tmp_path_factory.mktemp(f"run-{recipe}")
            train(recipe_config(recipe, out, data_dir, model_dir), show_progress=False)
            runs[recipe] = out
        return runs[recipe]

    return run


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def read_log(run_dir: Path) -> list[dict]:
    lines = (run_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def saved_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoint"
    adapter = folder / "adapter_model.safetensors"
    return load_file(adapter if adapter.exists() else folder / "model.safetensors")


def test_registry_has_four_recipes():
    assert sorted(RECIPES) == ["dp_lora", "dp_sgd", "full", "lora"]


@pytest.mark.parametrize("recipe", ["full", "dp_sgd"])
def test_all_weights_recipe_moves_weights(finished, model_dir, recipe):
    initial = load_file(model_dir / "model.safetensors")
    trained = saved_weights(finished(recipe))

    assert trained.keys() == initial.keys()
    unchanged = [name for name in initial if torch.equal(trained[name], initial[name])]
    assert unchanged == []


@pytest.mark.parametrize("recipe", ["lora", "dp_lora"])
def test_lora_recipe_moves_adapter(finished, model_dir, recipe):
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    tuned = PeftModel.from_pretrained(base, finished(recipe) / "checkpoint")
    b_matrices = {name: p for name, p in tuned.named_parameters() if "lora_B" in name}

    assert b_matrices, "the loaded adapter has no lora_B matrices"
    still_zero = [name for name, p in b_matrices.items() if p.abs().max() == 0]
    assert still_zero == []


@pytest.mark.parametrize("recipe", ["lora", "dp_lora"])
def test_lora_adapter_changes_outputs(finished, model_dir, recipe):
    batch = CausalLMCollator(1)([EncodedRecord("a", [0, 5, 9, 7, 12, 0], [None] * 6)])
    batch.pop("labels")
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        base_logits = base(**batch).logits
        tuned = PeftModel.from_pretrained(base, finished(recipe) / "checkpoint").eval()
        tuned_logits = tuned(**batch).logits

    assert not torch.allclose(tuned_logits, base_logits)


@pytest.mark.parametrize("recipe", ["lora", "dp_lora"])
def test_lora_checkpoint_contains_only_adapters(finished, recipe):
    folder = finished(recipe) / "checkpoint"
    names = list(saved_weights(finished(recipe)))

    assert not (folder / "model.safetensors").exists()
    assert names
    assert [name for name in names if "lora_" not in name] == []


@pytest.mark.parametrize("recipe", ["lora", "dp_lora"])
def test_lora_freezes_base(tmp_path, data_dir, model_dir, recipe):
    config = recipe_config(recipe, tmp_path / "run", data_dir, model_dir)
    trainer = Trainer(config, make_trainable=get_recipe(recipe)(config).make_trainable,
                      show_progress=False)
    trainer._setup()
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]

    assert trainable
    assert [name for name in trainable if "lora_" not in name] == []
    assert trainer.trainable < trainer.total_params


@pytest.mark.parametrize("recipe", ["full", "dp_sgd"])
def test_all_weights_recipe_trains_all(tmp_path, data_dir, model_dir, recipe):
    config = recipe_config(recipe, tmp_path / "run", data_dir, model_dir)
    trainer = Trainer(config, make_trainable=get_recipe(recipe)(config).make_trainable,
                      show_progress=False)
    trainer._setup()

    assert all(p.requires_grad for p in trainer.model.parameters())
    assert trainer.trainable == trainer.total_params


def random_logits(batch: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, vocab, generator=generator)


def test_loss_ignores_extra_padding():
    records = [EncodedRecord("a", [0, 4, 8, 2, 9, 0], [None] * 6),
               EncodedRecord("b", [0, 3, 0], [None] * 3)]
    labels = CausalLMCollator(1)(records)["labels"]
    extra = torch.full((2, 4), IGNORE_INDEX)
    padded_labels = torch.cat([labels, extra], dim=1)
    logits = random_logits(2, padded_labels.shape[1], 12, seed=1)

    losses = per_sample_loss(logits[:, : labels.shape[1]], labels)
    padded_losses = per_sample_loss(logits, padded_labels)

    torch.testing.assert_close(padded_losses, losses, atol=1e-6, rtol=1e-6)


def test_loss_is_mean_target_nll():
    records = [EncodedRecord("a", [0, 4, 8, 2, 9, 0], [None] * 6),
               EncodedRecord("b", [0, 3, 0], [None] * 3)]
    labels = CausalLMCollator(1)(records)["labels"]
    logits = random_logits(2, labels.shape[1], 12, seed=2)
    expected = []
    for row, record in enumerate(records):
        ids = record.input_ids
        # The logit at position t scores token t + 1, so the start token is never a target.
        nll = [-torch.log_softmax(logits[row, t], dim=-1)[ids[t + 1]].item()
               for t in range(len(ids) - 1)]
        expected.append(sum(nll) / len(nll))

    losses = per_sample_loss(logits, labels)

    torch.testing.assert_close(losses, torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_collator_masks_padding_and_start():
    records = [EncodedRecord("a", [0, 4, 8, 0], [None] * 4), EncodedRecord("b", [0, 3], [None] * 2)]
    batch = CausalLMCollator(1)(records)

    assert batch["labels"][:, 0].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["attention_mask"][1].tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_train_log_rows(finished, recipe):
    rows = read_log(finished(recipe))

    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    for row in rows:
        assert {"step", "loss", "lr", "epsilon"} <= row.keys()
        assert math.isfinite(row["loss"])
        assert row["lr"] >= 0


def test_log_lr_is_step_lr(finished):
    rows = read_log(finished("full"))
    # No warmup: the linear schedule starts at the full rate and loses 1/STEPS of it per step.
    expected = [LEARNING_RATE * (1 - step / STEPS) for step in range(STEPS)]

    assert [row["lr"] for row in rows] == pytest.approx(expected)


@pytest.mark.parametrize("recipe", ["full", "lora"])
def test_log_epsilon_none_without_dp(finished, recipe):
    rows = read_log(finished(recipe))

    assert [row["epsilon"] for row in rows] == [None] * STEPS


@pytest.mark.parametrize("recipe", ["dp_sgd", "dp_lora"])
def test_log_epsilon_grows_under_dp(finished, recipe):
    epsilons = [row["epsilon"] for row in read_log(finished(recipe))]

    assert all(epsilon > 0 for epsilon in epsilons)
    assert epsilons == sorted(epsilons)
    assert epsilons[-1] == read_json(finished(recipe) / "privacy.json")["epsilon"]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_run_info_completed(finished, recipe):
    info = read_json(finished(recipe) / "run_info.json")

    assert info["status"] == "completed"
    assert info["error"] is None
    assert [name for name in COST_FIELDS if name not in info["cost"]] == []
    assert info["cost"]["steps"] == STEPS
    assert info["cost"]["num_train_records"] == NUM_TRAIN


def test_finished_run_drops_state(finished):
    assert not (finished("full") / "state").exists()


def test_completed_rerun_is_noop(finished, data_dir, model_dir):
    run_dir = finished("full")
    watched = [run_dir / "run_info.json", run_dir / "train_log.jsonl",
               run_dir / "config.yaml", run_dir / "checkpoint" / "model.safetensors"]
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in watched}

    info = train(recipe_config("full", run_dir, data_dir, model_dir), show_progress=False)

    assert info.status == "completed"
    for path in watched:
        assert (path.stat().st_mtime_ns, path.read_bytes()) == before[path], path.name


class SimulatedCrash(Exception):
    """Exception raised inside a training step in place of a killed process."""


@pytest.mark.parametrize("recipe", ["full", "dp_sgd"])
def test_resume_matches_uninterrupted(monkeypatch, tmp_path, finished, data_dir, model_dir,
                                      recipe):
    reference = finished(recipe)
    crash_step = CHECKPOINT_EVERY + 1  # after the step-2 checkpoint, with one step to redo
    real_step = Trainer._train_step
    executed = []

    def crashing_step(self, step):
        if step == crash_step:
            raise SimulatedCrash(f"stopped at step {step}")
        return real_step(self, step)

    def counting_step(self, step):
        executed.append(step)
        return real_step(self, step)

    config = recipe_config(recipe, tmp_path / "run", data_dir, model_dir)
    monkeypatch.setattr(Trainer, "_train_step", crashing_step)
    with pytest.raises(SimulatedCrash):
        train(config, show_progress=False)
    stopped = read_json(tmp_path / "run" / "run_info.json")
    latest = read_json(tmp_path / "run" / "state" / "latest.json")
    monkeypatch.setattr(Trainer, "_train_step", counting_step)
    info = train(config, show_progress=False)
    resumed, uninterrupted = saved_weights(tmp_path / "run"), saved_weights(reference)
    expected_epsilon = read_json(reference / "run_info.json")["cost"]["epsilon"]

    assert stopped["status"] == "failed"
    assert latest["step"] == CHECKPOINT_EVERY
    assert executed == list(range(CHECKPOINT_EVERY, STEPS))
    assert info.status == "completed"
    assert [row["step"] for row in read_log(tmp_path / "run")] == list(range(1, STEPS + 1))
    differing = [name for name in uninterrupted
                 if not torch.equal(resumed[name], uninterrupted[name])]
    assert differing == []
    assert info.cost["epsilon"] == expected_epsilon


def test_local_load_and_adapters_print_nothing(tiny_model_dir, capfd):
    """Loading a local model and adding adapters leave no progress bars or peft warnings."""
    import warnings

    from transformers.utils import logging as transformers_logging

    from privft.config import LoRASettings
    from privft.models import load_model
    from privft.recipes.adapters import add_lora

    enabled_before = transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_model(str(tiny_model_dir("gpt_neox")))
            add_lora(model, LoRASettings(r=2))
        # The bars come back for everything else, hub downloads included.
        assert transformers_logging.is_progress_bar_enabled()
    finally:
        if not enabled_before:
            transformers_logging.disable_progress_bar()
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
    assert [w for w in caught if "is_gradient_checkpointing" in str(w.message)] == []
