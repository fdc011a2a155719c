"""Typed settings for a run. Precedence: dataclass defaults < YAML preset < CLI overrides.

Every dataclass validates itself in ``__post_init__`` and collects all problems before raising,
so one run of a bad config lists everything that needs fixing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPE_NAMES = ("full", "lora", "dp_sgd", "dp_lora")
ACCOUNTANT_NAMES = ("rdp", "prv")
GRAD_SAMPLE_MODES = ("auto", "hooks", "functorch", "ghost")
SAMPLING_NAMES = ("poisson", "shuffle")
TRACKER_NAMES = ("tensorboard", "mlflow", "wandb")
SHARDING_NAMES = ("none", "fsdp")
BUILTIN_MODEL = "builtin"


class ConfigError(ValueError):
    """Invalid settings; the message lists every invalid value with the fix."""


def _coerce_numbers(settings: object, names: tuple[str, ...], prefix: str) -> list[str]:
    """Turn numeric strings into floats and reject non-numbers and non-finite values.

    PyYAML reads ``1e-3`` (no dot) as a string, so presets written that way still work.
    Returns the problems; callers raise them before any range check runs.
    """
    problems = []
    for name in names:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                problems.append(f"{prefix}{name} must be a number, got {value!r}")
                continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{prefix}{name} must be a number, got {value!r}")
        elif not math.isfinite(value):
            problems.append(f"{prefix}{name} must be a finite number, got {value!r}")
        else:
            setattr(settings, name, float(value))
    return problems


def _raise_if_any(problems: list[str], where: str) -> None:
    if problems:
        raise ConfigError(f"invalid {where}:\n  " + "\n  ".join(problems))


@dataclass
class LoRASettings:
    """LoRA adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    # None picks the attention and MLP projections of the model's architecture.
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        _raise_if_any(_coerce_numbers(self, ("alpha", "dropout"), "lora."), "LoRA settings")
        problems = []
        if not isinstance(self.r, int) or self.r < 1:
            problems.append(f"lora.r must be a positive integer, got {self.r!r}")
        if self.alpha <= 0:
            problems.append(f"lora.alpha must be positive, got {self.alpha!r}")
        if not 0 <= self.dropout < 1:
            problems.append(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        _raise_if_any(problems, "LoRA settings")


@dataclass
class DPSettings:
    """DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", 2016) through opacus.

    Exactly one of ``epsilon`` (noise calibrated for the planned steps) and ``noise_multiplier``
    (epsilon reported after training) decides the noise. ``epsilon_budget`` caps what a run may
    spend: training stops before the first step that would pass it.
    """

    epsilon: float | None = 8.0
    # None means 1 / (10 N): below 1/N, the level at which releasing one record is allowed.
    delta: float | None = None
    noise_multiplier: float | None = None
    # None means the target epsilon, or no cap when the noise multiplier is fixed.
    epsilon_budget: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    grad_sample_mode: str = "auto"
    # poisson: what the accountants analyse. shuffle: fixed-size batches from a shuffled epoch,
    # which the accountants do not cover, so the reported epsilon is only an approximation.
    sampling: str = "poisson"

    def __post_init__(self) -> None:
        numbers = ("epsilon", "delta", "noise_multiplier", "epsilon_budget", "max_grad_norm")
        _raise_if_any(_coerce_numbers(self, numbers, "dp."), "DP settings")
        problems = []
        if self.epsilon is None and self.noise_multiplier is None:
            problems.append("dp: set either epsilon (target) or noise_multiplier")
        if self.epsilon is not None and self.noise_multiplier is not None:
            problems.append(
                "dp: set epsilon or noise_multiplier, not both "
                f"(got epsilon={self.epsilon}, noise_multiplier={self.noise_multiplier})"
            )
        if self.epsilon is not None and not self.epsilon > 0:
            problems.append(f"dp.epsilon must be positive, got {self.epsilon!r}")
        if self.noise_multiplier is not None and not self.noise_multiplier > 0:
            problems.append(f"dp.noise_multiplier must be positive, got {self.noise_multiplier!r}")
        if self.epsilon_budget is not None and not self.epsilon_budget > 0:
            problems.append(f"dp.epsilon_budget must be positive, got {self.epsilon_budget!r}")
        if self.sampling not in SAMPLING_NAMES:
            problems.append(
                f"dp.sampling {self.sampling!r} is unknown; valid: {', '.join(SAMPLING_NAMES)}"
            )
        if self.delta is not None and not 0 < self.delta < 1:
            problems.append(f"dp.delta must be in (0, 1), got {self.delta!r}")
        if not self.max_grad_norm > 0:
            problems.append(f"dp.max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if self.accountant not in ACCOUNTANT_NAMES:
            problems.append(
                f"dp.accountant {self.accountant!r} is unknown; "
                f"valid: {', '.join(ACCOUNTANT_NAMES)}"
            )
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            problems.append(
                f"dp.grad_sample_mode {self.grad_sample_mode!r} is unknown; "
                f"valid: {', '.join(GRAD_SAMPLE_MODES)}"
            )
        _raise_if_any(problems, "DP settings")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as the run folder's ``config.yaml``."""

    recipe: str = "full"
    data: str = ""
    out: str = ""
    model: str = BUILTIN_MODEL
    epochs: float = 3.0
    # Logical batch size. Under DP it is the expected Poisson batch: sample rate = batch_size / N.
    batch_size: int = 16
    # Memory bound: a logical batch runs in chunks of at most this many records, with gradients
    # accumulated. Under DP the noise is still added once per logical batch.
    physical_batch_size: int = 8
    # None picks the recipe's default: 2e-3 for LoRA adapters, 5e-4 for all weights.
    learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_length: int = 256
    seed: int = 0
    log_every: int = 5
    checkpoint_every: int = 50
    # Record cheap privacy measures into dynamics.jsonl every this many steps; 0 turns it off.
    eval_every: int = 0
    # Experiment trackers to log to, all offline: tensorboard, mlflow, wandb (privft.tracking).
    report_to: list[str] = field(default_factory=list)
    # fsdp: with several processes, split the weights, gradients and optimizer state of a
    # non-private recipe over the ranks (FSDP2). none: every rank stores the whole model.
    sharding: str = "none"
    lora: LoRASettings = field(default_factory=LoRASettings)
    dp: DPSettings = field(default_factory=DPSettings)

    def __post_init__(self) -> None:
        problems: list[str] = []
        # Nested sections are checked first, but their problems are listed with the others.
        for name, cls in (("lora", LoRASettings), ("dp", DPSettings)):
            value = getattr(self, name)
            if value is None:
                value = {}
            if isinstance(value, dict):
                try:
                    value = cls(**value)
                except ConfigError as err:
                    problems += str(err).splitlines()[1:]
                    value = cls()
                setattr(self, name, value)
        problems = [p.strip() for p in problems]
        numbers = ("epochs", "learning_rate", "weight_decay", "warmup_ratio")
        number_problems = _coerce_numbers(self, numbers, "")
        _raise_if_any(problems + number_problems if number_problems else [], "training settings")
        if self.learning_rate is None:
            self.learning_rate = 2e-3 if self.recipe in ("lora", "dp_lora") else 5e-4
        if self.recipe not in RECIPE_NAMES:
            problems.append(f"recipe {self.recipe!r} is unknown; valid: {', '.join(RECIPE_NAMES)}")
        if not self.epochs > 0:
            problems.append(f"epochs must be positive, got {self.epochs!r}")
        for name in (
            "batch_size",
            "physical_batch_size",
            "max_length",
            "log_every",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        every = self.eval_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            problems.append(f"eval_every must be an integer >= 0, got {every!r}")
        if isinstance(self.report_to, str) or self.report_to is None:
            self.report_to = [self.report_to] if self.report_to else []
        unknown = [name for name in self.report_to if name not in TRACKER_NAMES]
        if unknown:
            problems.append(
                f"report_to names unknown trackers {unknown}; valid: {', '.join(TRACKER_NAMES)}"
            )
        problems += self._sharding_problems()
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        _raise_if_any(problems, "training settings")

    def _sharding_problems(self) -> list[str]:
        if self.sharding not in SHARDING_NAMES:
            return [f"sharding {self.sharding!r} is unknown; valid: {', '.join(SHARDING_NAMES)}"]
        if self.sharding == "none":
            return []
        problems = []
        if self.uses_dp:
            problems.append(
                f"sharding {self.sharding!r} is not supported by the DP recipe {self.recipe!r}: "
                "opacus computes per-sample gradients from whole layers on every rank. Use "
                "sharding 'none' (data parallel), or a non-private recipe (full, lora)"
            )
        if isinstance(self.eval_every, int) and self.eval_every > 0:
            problems.append(
                f"eval_every {self.eval_every} is not supported with sharding "
                f"{self.sharding!r}: the dynamics are measured on rank 0 alone, which holds only "
                "a slice of a sharded model. Set eval_every to 0"
            )
        return problems

    @property
    def uses_dp(self) -> bool:
        return self.recipe in ("dp_sgd", "dp_lora")

    @property
    def uses_lora(self) -> bool:
        return self.recipe in ("lora", "dp_lora")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_keys(values: dict[str, Any], source: str) -> None:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    nested = {"lora": LoRASettings, "dp": DPSettings}
    problems = [
        f"unknown key {key!r}; valid keys: {', '.join(sorted(known))}"
        for key in values
        if key not in known
    ]
    for key, cls in nested.items():
        sub = values.get(key)
        if isinstance(sub, dict):
            valid = {f.name for f in dataclasses.fields(cls)}
            problems += [
                f"unknown key '{key}.{name}'; valid: {', '.join(sorted(valid))}"
                for name in sub
                if name not in valid
            ]
    _raise_if_any(problems, source)


def load_config(preset: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Build a TrainConfig from defaults, then a YAML preset, then overrides (None = unset)."""
    values: dict[str, Any] = {}
    if preset is not None:
        preset = Path(preset)
        try:
            loaded = yaml.safe_load(preset.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {preset} not found") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {preset} is not valid YAML: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {preset} must hold a mapping of settings")
        _check_keys(loaded, f"config file {preset}")
        values = loaded
    if overrides:
        clean = _drop_unset(overrides)
        _check_keys(clean, "overrides")
        values = _merge(values, _noise_replaces_epsilon(clean))
    try:
        return TrainConfig(**_noise_replaces_epsilon(values))
    except ConfigError as err:
        if preset is None:
            raise
        raise ConfigError(f"{err}\n(settings from {preset} and the command line)") from None


def _noise_replaces_epsilon(values: dict[str, Any]) -> dict[str, Any]:
    """Turn off the lower layers' epsilon or noise when a layer sets only the other one.

    Both decide the noise, so a CLI ``--epsilon`` over a fixed-noise preset (or the reverse)
    means the new choice, not a conflict.
    """
    dp = values.get("dp")
    if not isinstance(dp, dict):
        return values
    if dp.get("noise_multiplier") is not None and "epsilon" not in dp:
        return {**values, "dp": {**dp, "epsilon": None}}
    if dp.get("epsilon") is not None and "noise_multiplier" not in dp:
        return {**values, "dp": {**dp, "noise_multiplier": None}}
    return values


def _drop_unset(values: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            sub = _drop_unset(value)
            if sub:
                clean[key] = sub
        elif value is not None:
            clean[key] = value
    return clean


def save_config(config: TrainConfig, path: Path) -> None:
    from privft.storage import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def read_run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{path} not found; is {run_dir} a privft run folder?")
    return TrainConfig(**yaml.safe_load(path.read_text(encoding="utf-8")))
