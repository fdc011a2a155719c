"""Sweep files: parsing, grid expansion, run names, conflicts and shell commands (no training)."""

import builtins
import copy
import json
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from privft.cli import app
from privft.sweep import (
    SweepError,
    check_run_folders,
    import_ray,
    load_sweep,
    parse_sweep,
    run_state,
    shell_commands,
    write_plan,
)

ROOT = Path(__file__).resolve().parents[1]

GRID = {
    "name": "t",
    "out": "out",
    "base": {"model": "m", "epochs": 1},
    "grid": {
        "recipe": ["full", "lora", "dp_sgd", "dp_lora"],
        "epsilon": [1, 8],
        "lora_r": [4, 8],
        "seed": [0, 1],
    },
    "datasets": {"cs": {"path": "data/cs"}, "bio": {"synth": "biographies", "n_train": 50}},
}


def sweep_of(**changes):
    raw = copy.deepcopy(GRID)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return parse_sweep(raw)


def test_grid_size():
    # per dataset and seed: full 1, lora 2 ranks, dp_sgd 2 epsilons, dp_lora 2 x 2
    assert len(sweep_of().runs) == 2 * 2 * (1 + 2 + 2 + 4)


def test_axes_only_where_they_apply():
    names = {run.name for run in sweep_of().runs}
    assert "cs-full-lr0.0005-s0" in names
    assert "cs-lora-r4-lr0.002-s1" in names
    assert "cs-dp_sgd-eps8-lr0.0005-s0" in names
    assert "bio-dp_lora-eps1-r8-lr0.002-s1" in names


def test_run_settings_follow_grid():
    run = next(r for r in sweep_of().runs if r.name == "bio-dp_lora-eps1-r8-lr0.002-s1")
    assert run.config.dp.epsilon == 1.0
    assert run.config.lora.r == 8
    assert run.config.seed == 1
    assert run.config.epochs == 1
    assert run.config.data == str(Path("out") / "data" / "bio")
    assert run.run_dir == str(Path("out") / "runs" / run.name)


def test_names_stable_when_rate_explicit():
    implicit = {r.name for r in sweep_of().runs}
    grid = {**GRID["grid"], "learning_rate": {"full": 5e-4, "lora": [2e-3], "dp_sgd": None}}
    explicit = {r.name for r in sweep_of(grid=grid).runs}
    assert explicit == implicit


def test_rate_per_recipe():
    grid = {"recipe": ["full", "lora"], "learning_rate": {"full": [1e-4, 1e-3]}}
    names = sorted(r.name for r in sweep_of(grid=grid, datasets={"cs": {"path": "d"}}).runs)
    assert names == ["cs-full-lr0.0001-s0", "cs-full-lr0.001-s0", "cs-lora-r8-lr0.002-s0"]


def test_noise_multiplier_named():
    base = {"model": "m", "dp": {"noise_multiplier": 0.7}}
    sweep = sweep_of(base=base, grid={"recipe": ["dp_sgd"]}, datasets={"cs": {"path": "d"}})
    assert [r.name for r in sweep.runs] == ["cs-dp_sgd-nm0.7-lr0.0005-s0"]


def test_select_by_pattern():
    chosen = sweep_of().select(["cs-dp_*-eps8-*"])
    assert len(chosen) == 2 * (1 + 2)


def test_select_no_match_names_example():
    with pytest.raises(SweepError, match="run names look like 'cs-full-lr0.0005-s0'"):
        sweep_of().select(["nothing*"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grid": {"recipe": ["full"], "epsilons": [1]}}, "unknown grid axis 'epsilons'"),
        ({"grid": {"recipe": ["fine"]}}, "grid.recipe 'fine' is unknown"),
        ({"grid": {"epsilon": [1]}}, "missing grid.recipe"),
        ({"grid": {"recipe": ["dp_sgd"], "epsilon": [-1]}}, "value -1 must be a positive number"),
        ({"grid": {"recipe": ["lora"], "lora_r": [2.5]}}, "value 2.5 must be a positive integer"),
        ({"grid": {"recipe": ["full"], "seed": []}}, "grid.seed is an empty list"),
        ({"grid": {"recipe": ["full"], "seed": [1, 1]}}, "lists a value twice"),
        ({"grid": {"recipe": ["dp_sgd"], "epsilon": [8, 8.0]}}, "same run folder name twice"),
        ({"base": {"seed": 3}}, "base.seed is set by the sweep"),
        ({"base": {"epoch": 3}}, "unknown key base.epoch"),
        ({"base": {"lora": {"rank": 3}}}, r"unknown key base.lora.rank"),
        ({"base": {"dp": {"epsilon": 2}}}, "conflicts with grid.epsilon"),
        ({"base": {"epochs": -1}}, r"\(and 35 more runs\): .*epochs must be positive, got -1"),
        ({"datasets": None}, "missing 'datasets'"),
        ({"datasets": {"x": {"synth": "poems"}}}, "datasets.x.synth 'poems' is unknown"),
        ({"datasets": {"x": {"path": "a", "synth": "biographies"}}}, "exactly one of 'path'"),
        ({"datasets": {"x y": {"path": "a"}}}, "dataset name 'x y' must use only"),
        ({"eval": {"exposure": "guess"}}, "eval.exposure 'guess' is unknown"),
        ({"eval": {"extraction_records": -1}}, "eval.extraction_records must be an integer >= 0"),
        ({"eval": {"min_k": 2}}, r"eval.min_k must be a fraction in \(0, 1\] or null, got 2"),
        ({"resources": {"num_cpus": -2}}, "resources.num_cpus must be a number >= 0, got -2"),
        ({"out": None}, "missing 'out'"),
        ({"extra": 1}, "unknown key 'extra'"),
    ],
)
def test_invalid_sweep_rejected(changes, message):
    with pytest.raises(SweepError, match=message):
        sweep_of(**changes)


def test_all_problems_listed_together():
    with pytest.raises(SweepError) as caught:
        sweep_of(extra=1, grid={"recipe": ["fine"]})
    assert "unknown key 'extra'" in str(caught.value)
    assert "'fine' is unknown" in str(caught.value)


def test_missing_file_named(tmp_path):
    with pytest.raises(SweepError, match="not found"):
        load_sweep(tmp_path / "none.yaml")


def test_example_sweeps_parse():
    tiny = load_sweep(ROOT / "recipes" / "sweeps" / "tiny.yaml")
    study = load_sweep(ROOT / "recipes" / "sweeps" / "tradeoff_study.yaml")
    assert len(tiny.runs) >= 8
    assert len(study.runs) == 2 * (1 + 1 + 3 + 3) * 3


def test_study_sweep_parses():
    study = load_sweep(ROOT / "benchmarks" / "tradeoff_study" / "sweep.yaml")
    # Two domains x (full + LoRA + DP-SGD and DP-LoRA at 3 epsilons) x 3 seeds.
    assert len(study.runs) == 2 * (1 + 1 + 3 + 3) * 3


def test_out_option_overrides(tmp_path):
    sweep = load_sweep(ROOT / "recipes" / "sweeps" / "tiny.yaml", out=tmp_path)
    assert all(run.run_dir.startswith(str(tmp_path)) for run in sweep.runs)


def test_conflicting_run_folder_rejected(tmp_path):
    sweep = sweep_of(out=str(tmp_path))
    run = sweep.runs[0]
    changed = copy.deepcopy(run.config)
    changed.epochs = 5
    Path(run.run_dir).mkdir(parents=True)
    (Path(run.run_dir) / "config.yaml").write_text(yaml.safe_dump(changed.to_dict()))
    with pytest.raises(SweepError, match=r"epochs 5(\.0)? vs 1(\.0)?"):
        check_run_folders(sweep.runs)


def test_matching_run_folder_accepted(tmp_path):
    sweep = sweep_of(out=str(tmp_path))
    run = sweep.runs[0]
    Path(run.run_dir).mkdir(parents=True)
    (Path(run.run_dir) / "config.yaml").write_text(yaml.safe_dump(run.config.to_dict()))
    check_run_folders(sweep.runs)


def test_run_state_from_files(tmp_path):
    run = sweep_of(out=str(tmp_path)).runs[0]
    folder = Path(run.run_dir)
    assert run_state(run) == "new"
    folder.mkdir(parents=True)
    (folder / "run_info.json").write_text(json.dumps({"recipe": "full", "status": "failed"}))
    assert run_state(run) == "started"
    (folder / "run_info.json").write_text(json.dumps({"recipe": "full", "status": "completed"}))
    assert run_state(run) == "trained"
    (folder / "results.json").write_text("{}")
    assert run_state(run) == "evaluated"


def test_commands_one_per_run(tmp_path):
    sweep = sweep_of(out=str(tmp_path))
    lines = shell_commands(sweep)
    assert len(lines) == len(sweep.runs)
    assert all("\n" not in line for line in lines)


def test_command_steps(tmp_path):
    sweep = sweep_of(out=str(tmp_path))
    run = next(r for r in sweep.runs if r.dataset.name == "bio")
    line = shell_commands(sweep, [run])[0]
    assert f"test -f {run.run_dir}/results.json ||" in line
    assert "privft data synth --domain biographies" in line
    assert f"privft train --config {tmp_path}/configs/{run.name}.yaml" in line
    assert f"privft eval {run.run_dir} --exposure auto" in line


def test_command_eval_options(tmp_path):
    sweep = sweep_of(out=str(tmp_path), eval={"extraction_records": 0, "min_k": 0.1})
    line = shell_commands(sweep)[0]
    assert "--extraction-records 0 --min-k 0.1 --no-progress" in line


def test_exposure_methods_match_evaluator():
    from privft.evaluation.exposure import EXPOSURE_METHODS as EVALUATOR_METHODS
    from privft.sweep.plan import EXPOSURE_METHODS

    assert set(EXPOSURE_METHODS) == set(EVALUATOR_METHODS)


def test_command_is_valid_shell(tmp_path):
    line = shell_commands(sweep_of(out=str(tmp_path / "a b")))[0]
    assert shlex.split(line)[0] == "cd"


def test_plan_configs_load(tmp_path):
    from privft.config import load_config

    sweep = sweep_of(out=str(tmp_path))
    folder = write_plan(sweep)
    run = sweep.runs[-1]
    assert load_config(folder / f"{run.name}.yaml").to_dict() == run.config.to_dict()


def test_missing_ray_names_install(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(SweepError, match=r"pip install 'privft\[ray\]'"):
        import_ray()


def test_cli_dry_run_prints_commands(tmp_path):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(yaml.safe_dump({**GRID, "out": str(tmp_path / "out")}))
    result = CliRunner().invoke(app, ["sweep", str(sweep_file), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 36
    assert "draws the frontiers under" in " ".join(result.stderr.split())


def test_cli_ray_address_needs_backend(tmp_path):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(yaml.safe_dump(GRID))
    result = CliRunner().invoke(app, ["sweep", str(sweep_file), "--ray-address", "x:1"])
    assert result.exit_code == 1
    assert "--ray-address x:1 needs --backend ray" in result.output
