import json

import pytest
import torch
from conftest import write_tiny_data
from opacus import GradSampleModule
from safetensors.torch import load_file

from privft.config import DPSettings, LoRASettings, TrainConfig
from privft.evaluation.dynamics import DynamicsRecorder, read_dynamics
from privft.models import load_model
from privft.recipes import train

STEPS = 5

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("dynamics-data"))


def config(recipe: str, out, data, model, eval_every: int) -> TrainConfig:
    uses_dp = recipe.startswith("dp_")
    # 26 training records in batches of 4: 5 steps under DP (Poisson) and without (shuffled).
    epochs = STEPS * 4 / 26 if uses_dp else STEPS / 7
    return TrainConfig(
        recipe=recipe,
        data=str(data),
        out=str(out),
        model=str(model),
        epochs=epochs,
        batch_size=4,
        physical_batch_size=2,
        max_length=32,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        eval_every=eval_every,
        lora=LoRASettings(r=2),
        dp=DPSettings(epsilon=None, noise_multiplier=1.0),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, tiny_model_dir):
    """Factory: train a recipe with and without measurements and return both run folders."""
    trained = {}

    def run(recipe: str):
        if recipe not in trained:
            model = tiny_model_dir("gpt_neox")
            folders = []
            for every in (0, 2):
                out = tmp_path_factory.mktemp(f"{recipe}-every{every}")
                train(config(recipe, out, data_dir, model, every), show_progress=False)
                folders.append(out)
            trained[recipe] = folders
        return trained[recipe]

    return run


def weights(run_dir):
    folder = run_dir / "checkpoint"
    adapter = folder / "adapter_model.safetensors"
    return load_file(adapter if adapter.exists() else folder / "model.safetensors")


@pytest.mark.parametrize("recipe", ["full", "dp_sgd", "dp_lora"])
def test_measuring_keeps_weights(runs, recipe):
    plain, measured = runs(recipe)
    before, after = weights(plain), weights(measured)
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name


@pytest.mark.parametrize("recipe", ["full", "dp_sgd"])
def test_rows_at_expected_steps(runs, recipe):
    _, measured = runs(recipe)
    assert [row["step"] for row in read_dynamics(measured)] == [0, 2, 4, 5]


def test_no_rows_when_off(runs):
    plain, _ = runs("full")
    assert not (plain / "dynamics.jsonl").exists()


def test_step_zero_has_no_gap(runs):
    _, measured = runs("full")
    first = read_dynamics(measured)[0]
    # Before the first step the fine-tuned model is the base model.
    assert first["sensitive_gap"] == pytest.approx(0.0, abs=1e-6)
    assert first["sensitive_gain"] == pytest.approx(0.0, abs=1e-6)


def test_row_fields(runs):
    _, measured = runs("dp_sgd")
    last = read_dynamics(measured)[-1]
    assert set(last["canary_log_perplexity"]) == {"0", "2"}
    assert last["epsilon"] > 0
    assert last["eval_time_s"] >= 0


def test_training_gains_on_sensitive(runs):
    _, measured = runs("full")
    rows = read_dynamics(measured)
    assert rows[-1]["sensitive_gain"] > rows[0]["sensitive_gain"]


def load_tokenizer_of(folder):
    from privft.models import load_tokenizer

    return load_tokenizer(str(folder))


def test_dp_hooks_record_nothing(tmp_path, data_dir, tiny_model_dir):
    folder = tiny_model_dir("gpt_neox")
    model = load_model(str(folder))
    wrapped = GradSampleModule(model)
    wrapped.train()
    settings = config("dp_sgd", tmp_path, data_dir, folder, 1)
    recorder = DynamicsRecorder(
        settings, load_tokenizer_of(folder), model, wrapper=wrapped, start_step=3
    )
    recorder.record(4)
    assert model.training
    assert wrapped.hooks_enabled
    assert all(not getattr(module, "activations", None) for module in model.modules())


def test_rng_untouched(tmp_path, data_dir, tiny_model_dir):
    folder = tiny_model_dir("gpt_neox")
    settings = config("full", tmp_path, data_dir, folder, 1)
    model = load_model(str(folder))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    DynamicsRecorder(settings, load_tokenizer_of(folder), model).record(1)
    assert torch.equal(torch.rand(3), expected)


def test_resume_drops_later_rows(tmp_path, data_dir, tiny_model_dir):
    folder = tiny_model_dir("gpt_neox")
    path = tmp_path / "dynamics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (0, 2, 4, 6)))
    settings = config("full", tmp_path, data_dir, folder, 2)
    DynamicsRecorder(settings, load_tokenizer_of(folder), load_model(str(folder)), start_step=4)
    assert [row["step"] for row in read_dynamics(tmp_path)] == [0, 2, 4]
