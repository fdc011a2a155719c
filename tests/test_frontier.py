import json

import pytest

from privft.frontier import FrontierError, aggregate, build_frontier, pareto_set


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


def fake_result(tmp_path, name, recipe, seed, gap, nll):
    config = {
        "recipe": recipe,
        "model": "builtin",
        "data": "d",
        "learning_rate": 1e-3,
        "epochs": 1,
        "seed": seed,
        "lora": {"r": 8},
        "dp": {"epsilon": 8.0, "noise_multiplier": None},
    }
    folder = tmp_path / name
    folder.mkdir()
    result = {
        "run": {"name": name, "run_dir": str(folder), "config": config},
        "measures": {"sensitive_gap": gap, "test_nonsensitive_nll_nats": nll},
    }
    (folder / "results.json").write_text(json.dumps(result))
    return folder


def test_seeds_averaged_with_interval(tmp_path):
    runs = [
        fake_result(tmp_path, f"lora-s{s}", "lora", s, g, 3.0)
        for s, g in ((0, 0.1), (1, 0.2), (2, 0.3))
    ]
    from privft.frontier import load_results

    points = aggregate(load_results(runs))
    assert len(points) == 1
    assert points[0].mean["sensitive_gap"] == pytest.approx(0.2)
    low, high = points[0].ci95["sensitive_gap"]
    assert low < 0.2 < high


def test_frontier_writes_outputs(tmp_path):
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0),
        fake_result(tmp_path, "dp_sgd", "dp_sgd", 0, 0.05, 2.5),
        fake_result(tmp_path, "lora", "lora", 0, 0.6, 2.6),
    ]
    summary = build_frontier(runs, tmp_path / "out")
    assert summary["pareto"] == ["dp_sgd", "full"]
    for name in ("frontier.png", "frontier.svg", "frontier.csv", "frontier.md", "frontier.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_unknown_measure_lists_known(tmp_path):
    runs = [fake_result(tmp_path, "full", "full", 0, 0.5, 2.0)]
    with pytest.raises(FrontierError, match="known measures: sensitive_gap"):
        build_frontier(runs, tmp_path / "out", x="nope")


def test_missing_results_named(tmp_path):
    with pytest.raises(FrontierError, match="privft eval"):
        build_frontier([tmp_path], tmp_path / "out")
