"""The epsilon budget stops a run cleanly, and shuffled DP batches mark epsilon as approximate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_data
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from privft.cli import app
from privft.config import ConfigError, DPSettings, LoRASettings, TrainConfig
from privft.evaluation.runner import evaluate_run
from privft.frontier import aggregate, frontier_table
from privft.privacy.accounting import compute_epsilon, plan_privacy, steps_within_budget
from privft.recipes import train

NUM_TRAIN = 26  # write_tiny_data's 24 records plus the canary inserted twice
NOISE = 0.8
BATCH = 4

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_data(tmp_path_factory.mktemp("budget-data"))


def config(out: Path, data: Path, model: Path, *, epochs: float = 1.0, **dp) -> TrainConfig:
    return TrainConfig(
        recipe="dp_lora", data=str(data), out=str(out), model=str(model), epochs=epochs,
        batch_size=BATCH, physical_batch_size=4, max_length=32, log_every=1, warmup_ratio=0.0,
        checkpoint_every=2, lora=LoRASettings(r=2), dp=DPSettings(**dp),
    )


def epsilon_after(steps: int, *, delta: float) -> float:
    return compute_epsilon(accountant="rdp", noise_multiplier=NOISE, sample_rate=BATCH / NUM_TRAIN,
                           steps=steps, delta=delta)


# Budget -------------------------------------------------------------------------------------------
@given(
    noise=st.floats(0.5, 3.0),
    rate=st.floats(0.01, 0.5),
    steps=st.integers(1, 300),
    budget=st.floats(0.05, 20.0),
)
@settings(max_examples=25, deadline=None)
def test_steps_within_budget_last_under(noise, rate, steps, budget):
    steps_kept = steps_within_budget(accountant="rdp", noise_multiplier=noise, sample_rate=rate,
                               steps=steps, delta=1e-5, budget=budget)
    def spent(count):
        return compute_epsilon(accountant="rdp", noise_multiplier=noise, sample_rate=rate,
                               steps=count, delta=1e-5)

    assert 0 <= steps_kept <= steps
    assert spent(steps_kept) <= budget
    if steps_kept < steps:
        assert spent(steps_kept + 1) > budget


def test_target_epsilon_plan_runs_every_step():
    """Calibrated noise keeps all planned steps within the target, which is the default budget."""
    plan = plan_privacy(DPSettings(epsilon=2.0), num_records=200, batch_size=16, epochs=3)
    assert plan.budget == 2.0
    assert plan.steps_to_run == plan.steps
    assert plan.planned_epsilon <= 2.0


def test_budget_below_one_step_rejected():
    settings_ = DPSettings(epsilon=None, noise_multiplier=0.3, epsilon_budget=0.01)
    with pytest.raises(ValueError, match=r"epsilon_budget 0.01 is below the epsilon of a single"):
        plan_privacy(settings_, num_records=100, batch_size=10, epochs=1)


def test_budget_must_be_positive():
    with pytest.raises(ConfigError, match="dp.epsilon_budget must be positive"):
        DPSettings(epsilon_budget=-1)


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory, tiny_model_dir, data_dir):
    """Fixed noise for 3 epochs (about 20 steps) with a budget that the planned steps pass."""
    delta = 1 / (10 * NUM_TRAIN)
    planned = round(3 / (BATCH / NUM_TRAIN))
    budget = (epsilon_after(5, delta=delta) + epsilon_after(6, delta=delta)) / 2
    out = tmp_path_factory.mktemp("budget-run")
    cfg = config(out, data_dir, tiny_model_dir("gpt_neox"), epochs=3.0, epsilon=None,
                 noise_multiplier=NOISE, epsilon_budget=budget)
    info = train(cfg, show_progress=False)
    return out, info, budget, planned, delta


def test_budget_stops_before_passing_it(budget_run):
    out, info, budget, planned, delta = budget_run
    ledger = json.loads((out / "privacy.json").read_text())
    assert info.status == "completed"
    assert ledger["steps"] == 5
    assert ledger["planned_steps"] == planned
    assert ledger["stopped_by_budget"] is True
    assert ledger["epsilon_budget"] == budget
    assert ledger["epsilon"] <= budget < epsilon_after(6, delta=delta)
    assert ledger["epsilon"] == pytest.approx(epsilon_after(5, delta=delta), rel=1e-12)
    assert info.cost["steps"] == 5
    assert info.cost["stopped_by"] == "epsilon_budget"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4, 5]
    assert (out / "checkpoint").is_dir()
    assert not (out / "state").exists()


def test_budget_stop_reaches_results(budget_run):
    out, *_ = budget_run
    results = evaluate_run(out, exposure_method="sampled", exposure_samples=50, show_progress=False)
    assert results["privacy"]["stopped_by_budget"] is True
    assert results["cost"]["stopped_by"] == "epsilon_budget"


def test_budget_stop_is_announced(tmp_path, tiny_model_dir, data_dir):
    runner = CliRunner()
    result = runner.invoke(app, [
        "train", "--recipe", "dp_lora", "--data", str(data_dir), "--out", str(tmp_path / "cli"),
        "--model", str(tiny_model_dir("gpt_neox")), "--epochs", "3", "--batch-size", "4",
        "--max-length", "32", "--noise-multiplier", str(NOISE), "--epsilon-budget",
        str(epsilon_after(3, delta=1 / (10 * NUM_TRAIN)) + 1e-9), "--lora-r", "2", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert "stopped by the epsilon budget at step 3 of 20" in " ".join(result.output.split())


def test_budget_run_resumes_to_same_stop(tmp_path, tiny_model_dir, data_dir):
    """A run killed before its budget step resumes and stops at that same step."""
    delta = 1 / (10 * NUM_TRAIN)
    budget = (epsilon_after(5, delta=delta) + epsilon_after(6, delta=delta)) / 2
    cfg = config(tmp_path / "run", data_dir, tiny_model_dir("gpt_neox"), epochs=3.0,
                 epsilon=None, noise_multiplier=NOISE, epsilon_budget=budget)
    import privft.recipes.trainer as trainer_module

    original = trainer_module.Trainer._train_step

    def crash_at_four(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    trainer_module.Trainer._train_step = crash_at_four
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, show_progress=False)
    finally:
        trainer_module.Trainer._train_step = original
    info = train(cfg, show_progress=False)
    ledger = json.loads((tmp_path / "run" / "privacy.json").read_text())
    assert info.status == "completed"
    assert ledger["steps"] == 5
    assert ledger["epsilon"] == pytest.approx(epsilon_after(5, delta=delta), rel=1e-12)


# Shuffled sampling --------------------------------------------------------------------------------
def test_shuffle_plan_counts_batches_per_epoch():
    plan = plan_privacy(DPSettings(sampling="shuffle"), num_records=26, batch_size=4, epochs=2)
    assert plan.steps == 2 * 7  # ceil(26 / 4) batches per epoch
    assert plan.sample_rate == 4 / 26
    assert plan.approximate_reasons and "Poisson" in plan.approximate_reasons[0]
    poisson = plan_privacy(DPSettings(), num_records=26, batch_size=4, epochs=2)
    assert poisson.approximate_reasons == []


def test_unknown_sampling_rejected():
    with pytest.raises(ConfigError, match=r"dp.sampling 'uniform' is unknown; valid: poisson"):
        DPSettings(sampling="uniform")


@pytest.fixture(scope="module")
def shuffle_run(tmp_path_factory, tiny_model_dir, data_dir):
    out = tmp_path_factory.mktemp("shuffle-run")
    cfg = config(out, data_dir, tiny_model_dir("gpt2"), epochs=1.0, sampling="shuffle")
    info = train(cfg, show_progress=False)
    return out, info


def test_shuffle_run_is_marked_approximate(shuffle_run):
    out, info = shuffle_run
    ledger = json.loads((out / "privacy.json").read_text())
    assert ledger["sampling"] == "shuffle"
    assert ledger["approximate"] is True
    assert "Chua et al." in ledger["approximate_reasons"][0]
    assert ledger["steps"] == 7  # every record once: 6 batches of 4 and one of 2
    assert info.cost["epsilon_approximate"] is True
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert sum(row["batch_records"] for row in log) == NUM_TRAIN


def test_poisson_run_is_not_approximate(tmp_path, tiny_model_dir, data_dir):
    cfg = config(tmp_path / "run", data_dir, tiny_model_dir("gpt2"), epochs=0.3)
    info = train(cfg, show_progress=False)
    ledger = json.loads((tmp_path / "run" / "privacy.json").read_text())
    assert ledger["approximate"] is False
    assert ledger["approximate_reasons"] == []
    assert info.cost["epsilon_approximate"] is False


def test_shuffle_warns_and_reaches_frontier(shuffle_run, tiny_model_dir, data_dir, tmp_path,
                                            caplog):
    out, _ = shuffle_run
    with caplog.at_level(logging.WARNING, logger="privft.recipes.trainer"):
        cfg = config(tmp_path / "again", data_dir, tiny_model_dir("gpt2"), epochs=0.2,
                     sampling="shuffle")
        train(cfg, show_progress=False)
    assert any("epsilon is approximate" in r.getMessage() for r in caplog.records)
    results = evaluate_run(out, exposure_method="sampled", exposure_samples=50, show_progress=False)
    assert results["privacy"]["approximate"] is True
    points = aggregate([results])
    rows = frontier_table(points, "test_nonsensitive_nll_nats", "sensitive_gap", set())
    assert rows[0]["epsilon_approximate"] is True
    assert torch.isfinite(torch.tensor(results["cost"]["epsilon"]))


def test_budget_below_target_names_the_target():
    settings_ = DPSettings(epsilon=8.0, epsilon_budget=0.01)
    expected = r"calibrated for the target epsilon 8; set dp.epsilon_budget"
    with pytest.raises(ValueError, match=expected):
        plan_privacy(settings_, num_records=100, batch_size=10, epochs=1)


def test_eval_table_marks_approximate_epsilon(shuffle_run):
    out, _ = shuffle_run
    result = CliRunner().invoke(
        app,
        ["eval", str(out), "--exposure", "sampled", "--exposure-samples", "50", "--no-progress"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "│ epsilon " in row)
    assert "(approximate)" in line
