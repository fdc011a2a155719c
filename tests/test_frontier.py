import csv
import json

import pytest
from scipy import stats
from typer.testing import CliRunner

from privft.cli import app
from privft.frontier import (
    FrontierError,
    Panel,
    Point,
    aggregate,
    build_frontier,
    load_results,
    pareto_set,
    pareto_steps,
)


def test_pareto_hand_made_set():
    xs = [1.0, 2.0, 3.0, 2.5, 1.5]
    ys = [5.0, 3.0, 1.0, 3.5, 5.5]
    # (2.5, 3.5) is dominated by (2, 3); (1.5, 5.5) by (1, 5).
    assert pareto_set(xs, ys) == [0, 1, 2]


def test_pareto_respects_direction():
    xs, ys = [1.0, 2.0], [1.0, 2.0]
    assert pareto_set(xs, ys) == [0]
    assert pareto_set(xs, ys, x_better="max", y_better="max") == [1]
    assert pareto_set(xs, ys, x_better="max") == [0, 1]


def test_duplicate_points_both_kept():
    assert pareto_set([1.0, 1.0], [2.0, 2.0]) == [0, 1]


def fake_result(tmp_path, name, recipe, seed, gap, nll, *, measures=None, **config_changes):
    config = {
        "recipe": recipe,
        "model": "builtin",
        "data": "d",
        "out": str(tmp_path / name),
        "learning_rate": 1e-3,
        "epochs": 1,
        "seed": seed,
        "lora": {"r": 8},
        "dp": {"epsilon": 8.0, "noise_multiplier": None},
    }
    config.update(config_changes)
    folder = tmp_path / name
    folder.mkdir()
    result = {
        "run": {"name": name, "run_dir": str(folder), "config": config},
        "measures": {"sensitive_gap": gap, "test_nonsensitive_nll_nats": nll, **(measures or {})},
        "privacy": {"noise_multiplier": 0.5 + seed} if recipe.startswith("dp") else None,
    }
    (folder / "results.json").write_text(json.dumps(result))
    return folder


def three_seeds(tmp_path):
    return [
        fake_result(tmp_path, f"lora-s{s}", "lora", s, g, 3.0)
        for s, g in ((0, 0.1), (1, 0.2), (2, 0.3))
    ]


def test_seeds_averaged_with_interval(tmp_path):
    points = aggregate(load_results(three_seeds(tmp_path)))
    assert len(points) == 1
    assert points[0].mean["sensitive_gap"] == pytest.approx(0.2)
    low, high = points[0].ci95["sensitive_gap"]
    assert low < 0.2 < high


def test_seed_interval_is_t_interval(tmp_path):
    point = aggregate(load_results(three_seeds(tmp_path)))[0]
    half = stats.t.ppf(0.975, 2) * 0.1 / 3**0.5
    assert point.ci95["sensitive_gap"] == pytest.approx([0.2 - half, 0.2 + half])


def test_seeds_listed(tmp_path):
    point = aggregate(load_results(three_seeds(tmp_path)))[0]
    assert sorted(point.seeds) == [0, 1, 2]


def test_single_seed_has_no_interval(tmp_path):
    run = fake_result(tmp_path, "full", "full", 0, 0.5, 2.0)
    point = aggregate(load_results([run]))[0]
    assert point.ci95["sensitive_gap"] is None


def test_other_settings_not_merged(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "full", 0, 0.1, 2.0, batch_size=8),
        fake_result(tmp_path, "b", "full", 1, 0.2, 2.0, batch_size=16),
    ]
    points = aggregate(load_results(runs))
    assert len(points) == 2


def test_varying_setting_in_name(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "full", 0, 0.1, 2.0, batch_size=8),
        fake_result(tmp_path, "b", "full", 0, 0.2, 2.0, batch_size=16),
    ]
    names = [p.name for p in aggregate(load_results(runs))]
    assert names == ["full-batch_size=16", "full-batch_size=8"]


def test_irrelevant_dp_settings_ignored(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "full", 0, 0.1, 2.0),
        fake_result(tmp_path, "b", "full", 1, 0.2, 2.0, dp={"epsilon": 1.0}),
    ]
    assert len(aggregate(load_results(runs))) == 1


def test_bookkeeping_settings_merged(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "dp_sgd", 0, 0.1, 2.0, report_to=[], eval_every=0),
        fake_result(
            tmp_path,
            "b",
            "dp_sgd",
            1,
            0.2,
            2.0,
            report_to=["mlflow"],
            eval_every=5,
            dp={"epsilon": 8.0, "noise_multiplier": None, "grad_sample_mode": "ghost"},
        ),
    ]
    assert len(aggregate(load_results(runs))) == 1


def test_epsilon_in_dp_names(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "dp_sgd", 0, 0.1, 2.0, dp={"epsilon": 1.0}),
        fake_result(tmp_path, "b", "dp_sgd", 0, 0.2, 2.0, dp={"epsilon": 8.0}),
        fake_result(tmp_path, "c", "full", 0, 0.2, 2.0, learning_rate=5e-4),
    ]
    names = sorted(p.name for p in aggregate(load_results(runs)))
    # The learning rate differs only between recipes, so it stays out of the names.
    assert names == ["dp_sgd-eps1", "dp_sgd-eps8", "full"]


def test_frontier_writes_outputs(tmp_path):
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0),
        fake_result(tmp_path, "dp_sgd", "dp_sgd", 0, 0.05, 2.5),
        fake_result(tmp_path, "lora", "lora", 0, 0.6, 2.6),
    ]
    summary = build_frontier(runs, tmp_path / "out")
    assert summary["pareto"] == ["dp_sgd", "full"]
    for name in (
        "frontier.png",
        "frontier.svg",
        "frontier.csv",
        "frontier.md",
        "frontier.json",
        "frontier.html",
    ):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_chosen_directions_change_pareto(tmp_path):
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0),
        fake_result(tmp_path, "dp_sgd", "dp_sgd", 0, 0.05, 2.5),
        fake_result(tmp_path, "lora", "lora", 0, 0.6, 2.6),
    ]
    summary = build_frontier(runs, tmp_path / "out", x_better="max", y_better="max")
    assert summary["pareto"] == ["lora"]


def test_any_measure_on_axes(tmp_path):
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0, measures={"mia_auc": 0.7}),
        fake_result(tmp_path, "lora", "lora", 0, 0.6, 2.6, measures={"mia_auc": 0.6}),
    ]
    summary = build_frontier(runs, tmp_path / "out", x="mia_auc", y="sensitive_gap", panels=[])
    assert summary["pareto"] == ["full", "lora"]


def test_dotted_path_axis(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "dp_sgd", 0, 0.5, 2.0, dp={"epsilon": 1.0}),
        fake_result(tmp_path, "b", "dp_sgd", 1, 0.6, 2.6, dp={"epsilon": 8.0}),
    ]
    summary = build_frontier(runs, tmp_path / "out", x="privacy.noise_multiplier", panels=[])
    means = {p["name"]: p["mean"]["privacy.noise_multiplier"] for p in summary["points"]}
    assert means == {"dp_sgd-eps1": 0.5, "dp_sgd-eps8": 1.5}


def test_dotted_path_not_number(tmp_path):
    runs = [fake_result(tmp_path, "a", "full", 0, 0.5, 2.0)]
    with pytest.raises(FrontierError, match="run.name in .* is 'a', not a number"):
        build_frontier(runs, tmp_path / "out", x="run.name")


def test_panels_listed_with_missing(tmp_path):
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0, measures={"epsilon": None}),
        fake_result(tmp_path, "dp", "dp_sgd", 0, 0.1, 2.5, measures={"epsilon": 7.9}),
    ]
    summary = build_frontier(runs, tmp_path / "out", panels=["epsilon", "exposure_max"])
    panels = {p["x"]: p for p in summary["panels"]}
    # exposure_max has no value anywhere, so it gets no panel.
    assert list(panels) == ["sensitive_gap", "epsilon"]
    assert panels["epsilon"]["missing"] == ["full"]


def test_csv_has_intervals(tmp_path):
    build_frontier(three_seeds(tmp_path), tmp_path / "out")
    with open(tmp_path / "out" / "frontier.csv") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["sensitive_gap_ci95_low"]) < 0.2
    assert float(row["sensitive_gap_ci95_high"]) > 0.2
    assert row["seeds"] == "3"


def test_markdown_shows_intervals(tmp_path):
    build_frontier(three_seeds(tmp_path), tmp_path / "out")
    text = (tmp_path / "out" / "frontier.md").read_text()
    assert "| 0.2 [-0.04841, 0.4484] |" in text


def test_pareto_steps_follow_direction():
    points = [
        Point("a", "full", {}, [], {"x": 1.0, "y": 3.0}),
        Point("b", "full", {}, [], {"x": 2.0, "y": 1.0}),
    ]
    low = pareto_steps(points, Panel("x", "y", "min", "min", {0, 1}))
    high = pareto_steps(points, Panel("x", "y", "max", "min", {0, 1}))
    assert low == ([1.0, 2.0], [3.0, 1.0], "post")
    assert high[2] == "pre"


def test_unknown_measure_lists_known(tmp_path):
    runs = [fake_result(tmp_path, "full", "full", 0, 0.5, 2.0)]
    with pytest.raises(FrontierError, match="known measures: sensitive_gap"):
        build_frontier(runs, tmp_path / "out", x="nope")


def test_missing_results_named(tmp_path):
    with pytest.raises(FrontierError, match="privft eval"):
        build_frontier([tmp_path], tmp_path / "out")


def test_cli_directions(tmp_path):
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0),
        fake_result(tmp_path, "lora", "lora", 0, 0.6, 2.6),
    ]
    args = ["frontier", *map(str, runs), "--out", str(tmp_path / "out"), "--x-better", "max"]
    result = CliRunner().invoke(app, [*args, "--y-better", "max", "--panels", ""])
    assert result.exit_code == 0, result.output
    assert "Pareto set (sensitive_gap max, test_nonsensitive_nll_nats max): lora" in result.output


def test_cli_bad_direction(tmp_path):
    runs = [fake_result(tmp_path, "full", "full", 0, 0.5, 2.0)]
    args = ["frontier", str(runs[0]), "--out", str(tmp_path / "out"), "--x-better", "up"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "'up' is not one of" in result.output


def test_missing_default_settings_merged(tmp_path):
    """A run saved before a setting existed groups with runs that leave it at its default."""
    old = {"epsilon": 8.0, "noise_multiplier": None}
    new = {**old, "epsilon_budget": None, "sampling": "poisson"}
    runs = [
        fake_result(tmp_path, "a", "dp_sgd", 0, 0.1, 2.0, dp=old),
        fake_result(tmp_path, "b", "dp_sgd", 1, 0.2, 2.0, dp=new, sharding="none"),
    ]
    points = aggregate(load_results(runs))
    assert len(points) == 1
    assert points[0].name == "dp_sgd"


def test_non_default_new_setting_kept_apart(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "dp_sgd", 0, 0.1, 2.0),
        fake_result(tmp_path, "b", "dp_sgd", 1, 0.2, 2.0,
                    dp={"epsilon": 8.0, "noise_multiplier": None, "sampling": "shuffle"}),
    ]
    assert len(aggregate(load_results(runs))) == 2


def test_unset_settings_left_out_of_names(tmp_path):
    runs = [
        fake_result(tmp_path, "a", "dp_sgd", 0, 0.1, 2.0),
        fake_result(tmp_path, "b", "dp_sgd", 0, 0.2, 2.0,
                    dp={"epsilon": None, "noise_multiplier": 1.0, "epsilon_budget": 2.0}),
    ]
    names = sorted(p.name for p in aggregate(load_results(runs)))
    assert names == ["dp_sgd-eps8", "dp_sgd-epsilon_budget=2-nm1"]
