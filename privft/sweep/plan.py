"""Sweep files: parsing, validation and expansion of the grid into planned runs."""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from privft.config import (
    RECIPE_NAMES,
    ConfigError,
    DPSettings,
    LoRASettings,
    TrainConfig,
    load_config,
)

logger = logging.getLogger(__name__)

TOP_KEYS = ("name", "out", "base", "grid", "datasets", "eval", "resources")
GRID_AXES = ("recipe", "epsilon", "lora_r", "learning_rate", "seed")
EVAL_KEYS = ("max_records", "exposure", "exposure_samples", "extraction_records", "min_k")
# The same as privft.evaluation.exposure.EXPOSURE_METHODS (a test checks), without importing torch.
EXPOSURE_METHODS = ("auto", "exact", "sampled", "skewnorm")
RESOURCE_KEYS = ("num_cpus", "num_gpus", "max_retries")
SYNTH_KEYS = ("synth", "n_train", "n_test", "seed")
SYNTH_DOMAINS = ("customer_support", "biographies")
# Settings of a run that the grid sets; ``base`` must leave them to the grid.
GRID_OWNED = ("recipe", "data", "out", "seed", "learning_rate")
RAY_INSTALL = "pip install 'privft[ray]'"


class SweepError(ValueError):
    """An invalid sweep file, or run folders that conflict with it; the message lists each."""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of the sweep: an existing folder, or synthetic data made on first use."""

    name: str
    path: str
    synth: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvalSettings:
    """Options passed to ``privft eval`` for every run; None keeps the evaluator's default."""

    max_records: int | None = None
    exposure: str = "auto"
    exposure_samples: int = 5000
    extraction_records: int | None = None
    min_k: float | None = None


@dataclass(frozen=True)
class Resources:
    """Ray resources one run requests, and how often Ray retries a run whose worker died."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 1


@dataclass(frozen=True)
class PlannedRun:
    """One point of the grid: its folder, its full training config and its grid values."""

    name: str
    run_dir: str
    dataset: DatasetSpec
    config: TrainConfig
    axes: dict[str, Any]


@dataclass
class Sweep:
    """A parsed sweep file with its runs expanded, in a stable order."""

    name: str
    out: str
    datasets: list[DatasetSpec]
    eval: EvalSettings
    resources: Resources
    runs: list[PlannedRun] = field(default_factory=list)

    def select(self, patterns: list[str] | None) -> list[PlannedRun]:
        """Return the runs whose name matches any of the shell-style ``patterns`` (all if none)."""
        if not patterns:
            return list(self.runs)
        chosen = [r for r in self.runs if any(fnmatch.fnmatch(r.name, p) for p in patterns)]
        if not chosen:
            raise SweepError(
                f"no run of sweep {self.name!r} matches {', '.join(patterns)}; run names look "
                f"like {self.runs[0].name!r} (see `privft sweep FILE --dry-run`)"
            )
        return chosen


@dataclass
class RunOutcome:
    """Result of one run of a sweep: skipped, completed or failed, with time and error."""

    name: str
    run_dir: str
    status: str
    seconds: float = 0.0
    error: str | None = None


# 1. Parsing --------------------------------------------------------------------------------------
def load_sweep(path: Path, *, out: Path | None = None) -> Sweep:
    """Read a sweep file and expand its grid; every problem found is listed in one SweepError."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"sweep file {path} not found") from None
    except yaml.YAMLError as err:
        raise SweepError(f"sweep file {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise SweepError(f"sweep file {path} must hold a mapping with keys {', '.join(TOP_KEYS)}")
    return parse_sweep(raw, default_name=path.stem, out=out, source=str(path))


def parse_sweep(
    raw: dict[str, Any],
    *,
    default_name: str = "sweep",
    out: Path | None = None,
    source: str = "sweep",
) -> Sweep:
    """Validate a sweep mapping (as read from YAML) and expand it into planned runs."""
    problems: list[str] = []
    problems += [
        f"unknown key {key!r}; valid keys: {', '.join(TOP_KEYS)}"
        for key in raw
        if key not in TOP_KEYS
    ]
    name = str(raw.get("name") or default_name)
    out_dir = str(out) if out is not None else raw.get("out")
    if not out_dir:
        problems.append("missing 'out' (the folder for data, runs and frontiers); set it or --out")
        out_dir = ""
    base = _mapping(raw.get("base"), "base", problems)
    grid = _mapping(raw.get("grid"), "grid", problems)
    problems += _check_base(base, grid)
    axes = _parse_grid(grid, problems)
    datasets = _parse_datasets(raw.get("datasets"), base, str(out_dir), problems)
    settings = _parse_eval(_mapping(raw.get("eval"), "eval", problems), problems)
    resources = _parse_resources(_mapping(raw.get("resources"), "resources", problems), problems)
    if problems:
        raise SweepError(f"invalid sweep file {source}:\n  " + "\n  ".join(problems))
    sweep = Sweep(name, str(out_dir), datasets, settings, resources)
    sweep.runs = _expand(sweep, base, axes, source)
    return sweep


def _mapping(value: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"'{where}' must be a mapping, got {type(value).__name__}: {value!r}")
        return {}
    return value


def _check_base(base: dict[str, Any], grid: dict[str, Any]) -> list[str]:
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    problems = [
        f"unknown key base.{key}; valid keys: {', '.join(sorted(set(known) - set(GRID_OWNED)))}"
        for key in base
        if key not in known
    ]
    for key, cls in (("lora", LoRASettings), ("dp", DPSettings)):
        sub = base.get(key)
        if sub is not None and not isinstance(sub, dict):
            problems.append(f"base.{key} must be a mapping, got {sub!r}")
            continue
        valid = {f.name for f in dataclasses.fields(cls)}
        problems += [
            f"unknown key base.{key}.{name}; valid: {', '.join(sorted(valid))}"
            for name in sub or {}
            if name not in valid
        ]
    problems += [
        f"base.{key} is set by the sweep (grid axes, datasets or out); remove it from base"
        for key in GRID_OWNED
        if key in base
    ]
    if "epsilon" in grid and "epsilon" in (base.get("dp") or {}):
        problems.append("base.dp.epsilon conflicts with grid.epsilon; keep one of them")
    if "lora_r" in grid and "r" in (base.get("lora") or {}):
        problems.append("base.lora.r conflicts with grid.lora_r; keep one of them")
    if "epsilon" in grid and (base.get("dp") or {}).get("noise_multiplier") is not None:
        problems.append(
            "base.dp.noise_multiplier fixes the noise, so grid.epsilon cannot target an epsilon; "
            "remove one of them"
        )
    return problems


def _parse_grid(grid: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    problems += [
        f"unknown grid axis {key!r}; valid axes: {', '.join(GRID_AXES)} "
        "(datasets are listed under the top-level 'datasets' key)"
        for key in grid
        if key not in GRID_AXES
    ]
    axes: dict[str, Any] = {}
    recipes = _values(grid, "recipe", problems)
    if recipes is None:
        problems.append(f"missing grid.recipe; list one or more of {', '.join(RECIPE_NAMES)}")
        recipes = []
    for recipe in recipes:
        if recipe not in RECIPE_NAMES:
            problems.append(f"grid.recipe {recipe!r} is unknown; valid: {', '.join(RECIPE_NAMES)}")
    axes["recipe"] = [r for r in recipes if r in RECIPE_NAMES]
    axes["epsilon"] = _numbers(grid, "epsilon", problems, positive=True) or [None]
    axes["lora_r"] = _numbers(grid, "lora_r", problems, integer=True, positive=True) or [None]
    axes["seed"] = _numbers(grid, "seed", problems, integer=True) or [None]
    axes["learning_rate"] = _learning_rates(grid.get("learning_rate"), axes["recipe"], problems)
    return axes


def _values(grid: dict[str, Any], key: str, problems: list[str]) -> list[Any] | None:
    if key not in grid:
        return None
    value = grid[key]
    values = value if isinstance(value, list) else [value]
    if not values:
        problems.append(f"grid.{key} is an empty list; give at least one value or remove it")
        return None
    if len(set(map(repr, values))) < len(values):
        problems.append(f"grid.{key} lists a value twice: {values!r}")
    return values


def _numbers(
    grid: dict[str, Any],
    key: str,
    problems: list[str],
    *,
    integer: bool = False,
    positive: bool = False,
) -> list[Any] | None:
    values = _values(grid, key, problems)
    if values is None:
        return None
    kind = "integer" if integer else "number"
    good = []
    for value in values:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        ok = is_int if integer else (is_int or isinstance(value, float))
        if ok and positive and not value > 0:
            ok = False
        if ok:
            good.append(value)
        else:
            article = "an" if integer else "a"
            expected = f"a positive {kind}" if positive else f"{article} {kind}"
            problems.append(f"grid.{key} value {value!r} must be {expected}")
    return good


def _learning_rates(value: Any, recipes: list[str], problems: list[str]) -> dict[str, list]:
    """Learning rates per recipe: one list for all, or a mapping recipe -> list (None: default)."""
    if value is None:
        return {recipe: [None] for recipe in recipes}
    if isinstance(value, dict):
        unknown = [key for key in value if key not in recipes]
        if unknown:
            problems.append(
                f"grid.learning_rate names recipes {unknown!r} that grid.recipe does not list "
                f"({', '.join(recipes)})"
            )
        per_recipe = {recipe: value.get(recipe) for recipe in recipes}
    else:
        per_recipe = {recipe: value for recipe in recipes}
    out: dict[str, list] = {}
    for recipe, rates in per_recipe.items():
        if rates is None:
            rates = [None]
        elif not isinstance(rates, list):
            rates = [rates]
        for rate in rates:
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
                problems.append(f"grid.learning_rate value {rate!r} for {recipe} must be a number")
            elif rate is not None and not rate > 0:
                problems.append(f"grid.learning_rate value {rate!r} for {recipe} must be positive")
        out[recipe] = rates or [None]
    return out


def _parse_datasets(
    value: Any, base: dict[str, Any], out_dir: str, problems: list[str]
) -> list[DatasetSpec]:
    if value is None:
        problems.append(
            "missing 'datasets'; map a short name to {path: DATA_DIR} or to "
            "{synth: customer_support, n_train: 600, n_test: 200, seed: 0}"
        )
        return []
    if not isinstance(value, dict) or not value:
        problems.append(f"'datasets' must be a non-empty mapping of name to dataset, got {value!r}")
        return []
    specs = []
    for name, spec in value.items():
        where = f"datasets.{name}"
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            problems.append(f"dataset name {name!r} must use only letters, digits, '-' and '_'")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{where} must be a mapping with 'path' or 'synth', got {spec!r}")
            continue
        if ("path" in spec) == ("synth" in spec):
            problems.append(f"{where} needs exactly one of 'path' (a data folder) and 'synth'")
            continue
        if "path" in spec:
            extra = [k for k in spec if k != "path"]
            if extra:
                problems.append(f"{where} has keys {extra!r} beside 'path'; remove them")
            specs.append(DatasetSpec(name, str(spec["path"])))
            continue
        specs.append(_synth_spec(name, spec, out_dir, problems))
    return specs


def _synth_spec(name: str, spec: dict[str, Any], out_dir: str, problems: list[str]) -> DatasetSpec:
    where = f"datasets.{name}"
    problems += [
        f"unknown key {where}.{key}; valid: {', '.join(SYNTH_KEYS)}"
        for key in spec
        if key not in SYNTH_KEYS
    ]
    if spec["synth"] not in SYNTH_DOMAINS:
        problems.append(
            f"{where}.synth {spec['synth']!r} is unknown; valid: {', '.join(SYNTH_DOMAINS)}"
        )
    synth = {"domain": spec["synth"], "n_train": 600, "n_test": 200, "seed": 0}
    for key in ("n_train", "n_test", "seed"):
        if key in spec:
            value = spec[key]
            minimum = 0 if key == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
            synth[key] = value
    return DatasetSpec(name, str(Path(out_dir) / "data" / name), synth)


def _parse_eval(values: dict[str, Any], problems: list[str]) -> EvalSettings:
    problems += [
        f"unknown key eval.{key}; valid: {', '.join(EVAL_KEYS)}"
        for key in values
        if key not in EVAL_KEYS
    ]
    settings = EvalSettings(**{k: v for k, v in values.items() if k in EVAL_KEYS})
    if settings.exposure not in EXPOSURE_METHODS:
        problems.append(
            f"eval.exposure {settings.exposure!r} is unknown; valid: {', '.join(EXPOSURE_METHODS)}"
        )
    limit = settings.max_records
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        problems.append(f"eval.max_records must be a positive integer or null, got {limit!r}")
    samples = settings.exposure_samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        problems.append(f"eval.exposure_samples must be a positive integer, got {samples!r}")
    tried = settings.extraction_records
    if tried is not None and (isinstance(tried, bool) or not isinstance(tried, int) or tried < 0):
        problems.append(f"eval.extraction_records must be an integer >= 0 or null, got {tried!r}")
    fraction = settings.min_k
    if fraction is not None and (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 < fraction <= 1
    ):
        problems.append(f"eval.min_k must be a fraction in (0, 1] or null, got {fraction!r}")
    return settings


def _parse_resources(values: dict[str, Any], problems: list[str]) -> Resources:
    problems += [
        f"unknown key resources.{key}; valid: {', '.join(RESOURCE_KEYS)}"
        for key in values
        if key not in RESOURCE_KEYS
    ]
    resources = Resources(**{k: v for k, v in values.items() if k in RESOURCE_KEYS})
    for key in ("num_cpus", "num_gpus"):
        value = getattr(resources, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"resources.{key} must be a number >= 0, got {value!r}")
    if not resources.num_cpus and not resources.num_gpus:
        problems.append("resources: num_cpus and num_gpus are both 0; give a run at least one")
    retries = resources.max_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(f"resources.max_retries must be an integer >= 0, got {retries!r}")
    return resources


# 2. Expansion ------------------------------------------------------------------------------------
def _expand(
    sweep: Sweep, base: dict[str, Any], axes: dict[str, Any], source: str
) -> list[PlannedRun]:
    runs: list[PlannedRun] = []
    # The same invalid base setting fails every run; list each message once, with a count.
    failures: dict[str, list[str]] = {}
    for dataset in sweep.datasets:
        for recipe in axes["recipe"]:
            uses_dp = recipe in ("dp_sgd", "dp_lora")
            uses_lora = recipe in ("lora", "dp_lora")
            product = itertools.product(
                axes["epsilon"] if uses_dp else [None],
                axes["lora_r"] if uses_lora else [None],
                axes["learning_rate"][recipe],
                axes["seed"],
            )
            for epsilon, rank, rate, seed in product:
                grid_values = {
                    "recipe": recipe,
                    "epsilon": epsilon,
                    "lora_r": rank,
                    "learning_rate": rate,
                    "seed": seed,
                }
                try:
                    runs.append(_plan_run(sweep, dataset, base, grid_values))
                except ConfigError as err:
                    where = f"{dataset.name}, {_describe(grid_values)}"
                    message = " ".join(str(err).split())
                    failures.setdefault(message, []).append(where)
    problems = [
        f"{places[0]}"
        + (f" (and {len(places) - 1} more runs)" if len(places) > 1 else "")
        + f": {message}"
        for message, places in failures.items()
    ]
    names = [run.name for run in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(
            f"grid values give the same run folder name twice: {', '.join(twice)}; "
            "remove values that are equal as numbers (e.g. 8 and 8.0)"
        )
    if problems:
        raise SweepError(f"invalid runs in sweep file {source}:\n  " + "\n  ".join(problems))
    return runs


def _describe(grid_values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in grid_values.items() if v is not None)


def _plan_run(
    sweep: Sweep, dataset: DatasetSpec, base: dict[str, Any], grid_values: dict[str, Any]
) -> PlannedRun:
    values = {key: value for key, value in base.items()}
    values["dp"] = dict(base.get("dp") or {})
    values["lora"] = dict(base.get("lora") or {})
    values["recipe"] = grid_values["recipe"]
    values["data"] = dataset.path
    if grid_values["learning_rate"] is not None:
        values["learning_rate"] = float(grid_values["learning_rate"])
    if grid_values["seed"] is not None:
        values["seed"] = grid_values["seed"]
    if grid_values["epsilon"] is not None:
        values["dp"]["epsilon"] = float(grid_values["epsilon"])
    if grid_values["lora_r"] is not None:
        values["lora"]["r"] = grid_values["lora_r"]
    values["out"] = "pending"
    config = load_config(None, values)
    name = run_name(dataset.name, config)
    config.out = str(Path(sweep.out) / "runs" / name)
    return PlannedRun(name, config.out, dataset, config, {"dataset": dataset.name, **grid_values})


def run_name(dataset: str, config: TrainConfig) -> str:
    """Name a run from its dataset and grid settings, e.g. ``cs-dp_lora-eps8-r8-lr0.002-s0``.

    The learning rate is the resolved one (the recipe default when the grid gives none), so a
    name stays the same when a grid later lists that rate explicitly.
    """
    parts = [dataset, config.recipe]
    if config.uses_dp:
        if config.dp.epsilon is not None:
            parts.append(f"eps{config.dp.epsilon:g}")
        else:
            parts.append(f"nm{config.dp.noise_multiplier:g}")
    if config.uses_lora:
        parts.append(f"r{config.lora.r}")
    parts.append(f"lr{config.learning_rate:g}")
    parts.append(f"s{config.seed}")
    return "-".join(parts)
