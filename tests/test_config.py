"""Run settings: layer precedence, key and value validation, and the shipped YAML presets."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from privft.config import (
    ACCOUNTANT_NAMES,
    GRAD_SAMPLE_MODES,
    RECIPE_NAMES,
    ConfigError,
    DPSettings,
    LoRASettings,
    TrainConfig,
    load_config,
    read_run_config,
    save_config,
)

PRESETS = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))
TOP_LEVEL_KEYS = ", ".join(sorted(field.name for field in dataclasses.fields(TrainConfig)))
DP_KEYS = ", ".join(sorted(field.name for field in dataclasses.fields(DPSettings)))
UNKNOWN_MODE = "per_token"


def write_yaml(tmp_path: Path, values) -> Path:
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_no_layers_give_defaults():
    assert load_config() == TrainConfig()


def test_yaml_overrides_defaults(tmp_path):
    preset = write_yaml(tmp_path, {"learning_rate": 1e-3, "dp": {"max_grad_norm": 0.5}})
    config = load_config(preset)

    assert config.learning_rate == 1e-3
    assert config.dp.max_grad_norm == 0.5
    assert config.epochs == TrainConfig().epochs
    assert config.dp.epsilon == DPSettings().epsilon


def test_overrides_beat_yaml(tmp_path):
    preset = write_yaml(
        tmp_path,
        {"learning_rate": 1e-3, "batch_size": 8, "dp": {"max_grad_norm": 0.5, "accountant": "prv"}},
    )
    config = load_config(preset, {"learning_rate": 2e-3, "dp": {"max_grad_norm": 2.0}})

    assert config.learning_rate == 2e-3
    assert config.dp.max_grad_norm == 2.0
    assert config.batch_size == 8
    assert config.dp.accountant == "prv"


def test_none_override_keeps_yaml(tmp_path):
    preset = write_yaml(tmp_path, {"batch_size": 8, "dp": {"max_grad_norm": 0.5}})
    config = load_config(preset, {"batch_size": None, "dp": {"max_grad_norm": None}})

    assert config.batch_size == 8
    assert config.dp.max_grad_norm == 0.5


def test_unknown_yaml_key_lists_valid(tmp_path):
    preset = write_yaml(tmp_path, {"learning_rte": 1e-3})
    message = re.escape(f"unknown key 'learning_rte'; valid keys: {TOP_LEVEL_KEYS}")

    with pytest.raises(ConfigError, match=message):
        load_config(preset)


def test_unknown_nested_key_lists_valid(tmp_path):
    preset = write_yaml(tmp_path, {"dp": {"epsilom": 1.0}})
    message = re.escape(f"unknown key 'dp.epsilom'; valid: {DP_KEYS}")

    with pytest.raises(ConfigError, match=message):
        load_config(preset)


def test_unknown_override_key_rejected():
    with pytest.raises(ConfigError, match="invalid overrides:\n  unknown key 'sed'"):
        load_config(overrides={"sed": 3})


def test_unknown_keys_listed_together(tmp_path):
    preset = write_yaml(tmp_path, {"learning_rte": 1e-3, "dp": {"epsilom": 1.0}})

    with pytest.raises(ConfigError) as caught:
        load_config(preset)

    assert "'learning_rte'" in str(caught.value)
    assert "'dp.epsilom'" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dp": {"epsilon": 0.0}}, "dp.epsilon must be positive, got 0.0"),
        ({"dp": {"epsilon": -1.0}}, "dp.epsilon must be positive, got -1.0"),
        ({"dp": {"max_grad_norm": -1.0}}, "dp.max_grad_norm must be positive, got -1.0"),
        ({"dp": {"delta": 1.5}}, "dp.delta must be in (0, 1), got 1.5"),
        (
            {"dp": {"accountant": "gdp"}},
            f"dp.accountant 'gdp' is unknown; valid: {', '.join(ACCOUNTANT_NAMES)}",
        ),
        (
            {"dp": {"grad_sample_mode": UNKNOWN_MODE}},
            f"dp.grad_sample_mode '{UNKNOWN_MODE}' is unknown; "
            f"valid: {', '.join(GRAD_SAMPLE_MODES)}",
        ),
        ({"recipe": "dp_full"}, f"recipe 'dp_full' is unknown; valid: {', '.join(RECIPE_NAMES)}"),
        ({"epochs": 0}, "epochs must be positive, got 0"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in [0, 1), got 1.0"),
        ({"lora": {"r": 0}}, "lora.r must be a positive integer, got 0"),
    ],
)
def test_invalid_value_raises(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=overrides)


def test_dp_problems_listed_together():
    with pytest.raises(ConfigError) as caught:
        DPSettings(
            epsilon=-1.0, max_grad_norm=-1.0, accountant="gdp", grad_sample_mode=UNKNOWN_MODE
        )
    message = str(caught.value)

    assert "dp.epsilon must be positive" in message
    assert "dp.max_grad_norm must be positive" in message
    assert "dp.accountant 'gdp' is unknown" in message
    assert f"dp.grad_sample_mode '{UNKNOWN_MODE}' is unknown" in message


def test_top_problems_listed_together():
    with pytest.raises(ConfigError) as caught:
        TrainConfig(recipe="dp_full", epochs=0, batch_size=0, learning_rate=0.0)
    message = str(caught.value)

    assert "recipe 'dp_full' is unknown" in message
    assert "epochs must be positive" in message
    assert "batch_size must be a positive integer" in message
    assert "learning_rate must be positive" in message


def test_nested_and_top_problems_together():
    with pytest.raises(ConfigError) as caught:
        load_config(overrides={"recipe": "dp_full", "dp": {"epsilon": -1.0}})
    message = str(caught.value)

    assert "dp.epsilon must be positive" in message
    assert "recipe 'dp_full' is unknown" in message


def test_empty_dp_section_checked(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("recipe: dp_sgd\ndp:\n", encoding="utf-8")
    try:
        config = load_config(preset)
    except ConfigError:
        return

    assert isinstance(config.dp, DPSettings)


def test_epsilon_and_noise_together_raise():
    with pytest.raises(ConfigError, match="set epsilon or noise_multiplier, not both"):
        DPSettings(epsilon=2.0, noise_multiplier=1.0)


def test_neither_epsilon_nor_noise_raises():
    with pytest.raises(ConfigError, match="set either epsilon \\(target\\) or noise_multiplier"):
        DPSettings(epsilon=None)


def test_override_noise_drops_epsilon():
    config = load_config(overrides={"dp": {"noise_multiplier": 1.2}})

    assert config.dp.noise_multiplier == 1.2
    assert config.dp.epsilon is None


def test_yaml_noise_drops_default_epsilon(tmp_path):
    preset = write_yaml(tmp_path, {"dp": {"noise_multiplier": 1.2}})
    config = load_config(preset)

    assert config.dp.noise_multiplier == 1.2
    assert config.dp.epsilon is None


def test_override_noise_drops_yaml_epsilon(tmp_path):
    preset = write_yaml(tmp_path, {"dp": {"epsilon": 3.0, "max_grad_norm": 0.5}})
    config = load_config(preset, {"dp": {"noise_multiplier": 1.2}})

    assert config.dp.noise_multiplier == 1.2
    assert config.dp.epsilon is None
    assert config.dp.max_grad_norm == 0.5


def test_yaml_with_both_raises(tmp_path):
    preset = write_yaml(tmp_path, {"dp": {"epsilon": 3.0, "noise_multiplier": 1.2}})

    with pytest.raises(ConfigError, match="not both"):
        load_config(preset)


def test_missing_yaml_raises(tmp_path):
    with pytest.raises(ConfigError, match="preset.yaml not found"):
        load_config(tmp_path / "preset.yaml")


def test_broken_yaml_raises(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("recipe: [full\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(preset)


def test_non_mapping_yaml_raises(tmp_path):
    preset = write_yaml(tmp_path, ["full", "lora"])

    with pytest.raises(ConfigError, match="must hold a mapping of settings"):
        load_config(preset)


def test_saved_config_reads_back(tmp_path):
    config = TrainConfig(
        recipe="dp_lora",
        seed=7,
        lora=LoRASettings(r=4),
        dp=DPSettings(epsilon=None, noise_multiplier=0.9, accountant="prv"),
    )
    save_config(config, tmp_path / "config.yaml")

    assert read_run_config(tmp_path) == config


@pytest.mark.parametrize("preset", PRESETS or [None], ids=lambda p: p.name if p else "none")
def test_preset_loads(preset):
    if preset is None:
        pytest.skip("recipes/ has no YAML presets")
    config = load_config(preset)
    values = yaml.safe_load(preset.read_text(encoding="utf-8"))

    assert values.get("recipe") == config.recipe


def test_epsilon_override_replaces_preset_noise(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("recipe: dp_sgd\ndp:\n  noise_multiplier: 1.0\n", encoding="utf-8")
    config = load_config(preset, {"dp": {"epsilon": 4.0}})
    assert config.dp.epsilon == 4.0
    assert config.dp.noise_multiplier is None


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("recipe: full\nlearning_rate: 1e-3\n", encoding="utf-8")
    assert load_config(preset).learning_rate == 1e-3


def test_non_finite_values_rejected():
    with pytest.raises(ConfigError) as caught:
        load_config(
            overrides={
                "recipe": "dp_sgd",
                "dp": {"epsilon": float("inf")},
                "lora": {"alpha": float("nan")},
            }
        )
    message = str(caught.value)
    assert "dp.epsilon must be a finite number, got inf" in message
    assert "lora.alpha must be a finite number, got nan" in message


def test_non_number_rejected():
    with pytest.raises(ConfigError, match="learning_rate must be a number, got 'fast'"):
        load_config(overrides={"recipe": "full", "learning_rate": "fast"})
