"""Invalid settings raise with the valid range or the valid names, before any training starts."""

import math
import re

import pytest
from typer.testing import CliRunner

from privft.cli import app
from privft.config import (
    ACCOUNTANT_NAMES,
    GRAD_SAMPLE_MODES,
    RECIPE_NAMES,
    ConfigError,
    DPSettings,
    LoRASettings,
    TrainConfig,
)
from privft.models import check_max_length, load_model
from privft.privacy.accounting import default_delta, plan_privacy
from privft.recipes import get_recipe
from privft.recipes.adapters import add_lora, lora_targets


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.nan])
def test_epsilon_not_positive(epsilon):
    with pytest.raises(ConfigError, match=r"dp.epsilon must be (positive|a finite number), got"):
        DPSettings(epsilon=epsilon)


@pytest.mark.parametrize("noise", [0.0, -0.5, math.nan])
def test_noise_not_positive(noise):
    pattern = r"dp.noise_multiplier must be (positive|a finite number), got"
    with pytest.raises(ConfigError, match=pattern):
        DPSettings(epsilon=None, noise_multiplier=noise)


@pytest.mark.parametrize("norm", [0.0, -1.0, math.nan])
def test_clipping_norm_not_positive(norm):
    pattern = r"dp.max_grad_norm must be (positive|a finite number), got"
    with pytest.raises(ConfigError, match=pattern):
        DPSettings(max_grad_norm=norm)


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1])
def test_delta_outside_unit_interval(delta):
    with pytest.raises(ConfigError, match=re.escape(f"dp.delta must be in (0, 1), got {delta}")):
        DPSettings(delta=delta)


@pytest.mark.parametrize("delta", [0.01, 0.05])
def test_delta_not_below_one_over_n(delta):
    settings = DPSettings(delta=delta)
    with pytest.raises(ValueError, match=r"dp.delta .* is not below 1/N = 0.01 for N = 100"):
        plan_privacy(settings, num_records=100, batch_size=10, epochs=1)


def test_delta_error_names_fix():
    with pytest.raises(ValueError, match=r"Leave delta unset for 1/\(10 N\)"):
        plan_privacy(DPSettings(delta=0.5), num_records=100, batch_size=10, epochs=1)


def fixed_noise(**settings):
    """DP settings with a fixed noise multiplier, so that planning skips noise calibration."""
    return DPSettings(epsilon=None, noise_multiplier=1.0, **settings)


def test_delta_below_one_over_n_accepted():
    plan = plan_privacy(fixed_noise(delta=0.009), num_records=100, batch_size=10, epochs=1)
    assert plan.delta == 0.009


def test_default_delta_below_one_over_n():
    plan = plan_privacy(fixed_noise(), num_records=100, batch_size=10, epochs=1)
    assert plan.delta == default_delta(100)
    assert plan.delta < 1 / 100


def test_batch_larger_than_data():
    with pytest.raises(ValueError, match=r"batch_size 20 exceeds the 10 training records"):
        plan_privacy(DPSettings(), num_records=10, batch_size=20, epochs=1)


def test_unknown_recipe_lists_names():
    with pytest.raises(ConfigError, match=re.escape(f"valid: {', '.join(RECIPE_NAMES)}")):
        TrainConfig(recipe="dp_full")


def test_recipe_registry_lists_names():
    with pytest.raises(ConfigError, match=re.escape(f"valid: {', '.join(RECIPE_NAMES)}")):
        get_recipe("dp_full")


def test_unknown_accountant_lists_names():
    expected = f"dp.accountant 'gdp' is unknown; valid: {', '.join(ACCOUNTANT_NAMES)}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        DPSettings(accountant="gdp")


def test_unknown_grad_sample_mode_lists_names():
    expected = f"dp.grad_sample_mode 'jax' is unknown; valid: {', '.join(GRAD_SAMPLE_MODES)}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        DPSettings(grad_sample_mode="jax")


def test_dp_problems_reported_together():
    with pytest.raises(ConfigError) as info:
        DPSettings(epsilon=-1.0, max_grad_norm=0.0, accountant="gdp")
    message = str(info.value)
    assert "dp.epsilon must be positive" in message
    assert "dp.max_grad_norm must be positive" in message
    assert "dp.accountant 'gdp' is unknown" in message


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"r": 0}, r"lora.r must be a positive integer, got 0"),
        ({"alpha": -2.0}, r"lora.alpha must be positive, got -2.0"),
        ({"dropout": 1.0}, r"lora.dropout must be in \[0, 1\), got 1.0"),
    ],
)
def test_lora_value_invalid(settings, expected):
    with pytest.raises(ConfigError, match=expected):
        LoRASettings(**settings)


@pytest.fixture(scope="module")
def neox_model(tiny_model_dir):
    return load_model(str(tiny_model_dir("gpt_neox")))


def test_lora_target_missing_lists_modules(neox_model):
    settings = LoRASettings(target_modules=["q_proj", "dense"])
    with pytest.raises(ValueError) as info:
        lora_targets(neox_model, settings)
    message = str(info.value)
    assert "lora.target_modules ['q_proj'] not found in the model" in message
    for name in ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "lm_head"):
        assert name in message


def test_lora_target_gpt2_lists_conv1d(tiny_model_dir):
    model = load_model(str(tiny_model_dir("gpt2")))
    with pytest.raises(ValueError) as info:
        lora_targets(model, LoRASettings(target_modules=["query_key_value"]))
    message = str(info.value)
    assert "c_attn" in message
    assert "c_fc" in message


def test_lora_target_present_accepted(neox_model):
    settings = LoRASettings(target_modules=["query_key_value"])
    assert lora_targets(neox_model, settings) == ["query_key_value"]


def test_lora_default_targets_apply(tiny_model_dir):
    model = add_lora(load_model(str(tiny_model_dir("gpt_neox"))), LoRASettings())
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    assert all("lora_" in name for name in trainable)


def cli_error(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    # Rich draws the usage error in a box; join its lines to match whole sentences.
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


def test_cli_unknown_recipe_lists_names():
    code, output = cli_error("train", "--recipe", "bogus")
    assert code == 2
    assert "'bogus' is not one of 'full', 'lora', 'dp_sgd', 'dp_lora'" in output


def test_cli_unknown_accountant_lists_names():
    code, output = cli_error("train", "--accountant", "gdp")
    assert code == 2
    assert "'gdp' is not one of 'rdp', 'prv'" in output


def test_cli_bad_clipping_norm(tmp_path, tiny_data_dir):
    code, output = cli_error(
        "train", "--recipe", "dp_sgd", "--data", tiny_data_dir, "--out", tmp_path / "run",
        "--max-grad-norm", 0,
    )  # fmt: skip
    assert code == 1
    assert "dp.max_grad_norm must be positive, got 0.0" in output


def test_cli_noise_not_positive(tmp_path, tiny_data_dir):
    code, output = cli_error(
        "train", "--recipe", "dp_sgd", "--data", tiny_data_dir, "--out", tmp_path / "run",
        "--noise-multiplier", -1,
    )  # fmt: skip
    assert code == 1
    assert "dp.noise_multiplier must be positive, got -1.0" in output


def test_cli_preset_unknown_recipe(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("recipe: dp_full\n", encoding="utf-8")
    code, output = cli_error("train", "--config", preset, "--data", tmp_path, "--out", tmp_path)
    assert code == 1
    assert "recipe 'dp_full' is unknown; valid: full, lora, dp_sgd, dp_lora" in output


def test_max_length_beyond_positions(tiny_model_dir):
    model = load_model(str(tiny_model_dir("gpt2")))
    with pytest.raises(ConfigError, match=r"max_length 300 exceeds the model's 256 positions"):
        check_max_length(model, 300)


def test_max_length_at_positions_accepted(neox_model):
    check_max_length(neox_model, 256)


def test_cli_max_length_beyond_positions(tmp_path, tiny_data_dir, tiny_model_dir):
    code, output = cli_error(
        "train", "--recipe", "full", "--data", tiny_data_dir, "--out", tmp_path / "run",
        "--model", tiny_model_dir("gpt2"), "--max-length", 300, "--no-progress",
    )  # fmt: skip
    assert code == 1
    assert "set max_length (--max-length) to 256 or less" in output


def test_preset_error_names_the_file(tmp_path):
    from privft.config import ConfigError, load_config

    preset = tmp_path / "bad.yaml"
    preset.write_text("recipe: dp_sgd\ndp:\n  sampling: rand\n")
    with pytest.raises(ConfigError) as raised:
        load_config(preset)
    message = str(raised.value)
    assert "dp.sampling 'rand' is unknown; valid: poisson, shuffle" in message
    assert str(preset) in message
