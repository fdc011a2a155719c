"""Privacy accounting: noise calibration, sample rate, delta and epsilon against fresh opacus."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant

from privft.config import DPSettings
from privft.privacy.accounting import RDP_ALPHAS, compute_epsilon, plan_privacy
from privft.privacy.engine import make_private_training
from privft.privacy.sampling import PoissonBatchSampler

NUM_RECORDS = 1003
BATCH_SIZE = 10
FRESH_ACCOUNTANTS = {"rdp": RDPAccountant, "prv": PRVAccountant}

# opacus warns that its backward hook fires on a module whose inputs need no gradient, and that
# the largest RDP order was optimal for some of the extreme parameters hypothesis draws.
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook:UserWarning",
                                        "ignore:Optimal order is the largest alpha:UserWarning")


def fresh_epsilon(accountant: str, *, noise: float, sample_rate: float, steps: int,
                  delta: float) -> float:
    """Step a new opacus accountant once per training step and return its epsilon."""
    fresh = FRESH_ACCOUNTANTS[accountant]()
    for _ in range(steps):
        fresh.step(noise_multiplier=noise, sample_rate=sample_rate)
    if accountant == "rdp":
        return fresh.get_epsilon(delta=delta, alphas=RDP_ALPHAS)
    return fresh.get_epsilon(delta=delta)


def run_private_steps(plan, *, seed: int = 0):
    """Train a linear model for the plan's steps on Poisson batches, as the trainer does."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(plan.num_records, 4, generator=generator)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private = make_private_training(model, optimizer, plan=plan, grad_sample_mode="hooks",
                                    seed=seed)
    sampler = PoissonBatchSampler(num_records=plan.num_records, sample_rate=plan.sample_rate,
                                  seed=seed)
    for step in range(plan.steps):
        private.begin_step(step)
        outputs = private.module(features[sampler.indices(step)]).squeeze(-1)
        loss = outputs.pow(2).mean() if len(outputs) else outputs.sum()
        loss.backward()
        private.optimizer.step()
        private.optimizer.zero_grad(set_to_none=True)
    return private


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_run_epsilon_matches_fresh_accountant(accountant):
    dp = DPSettings(epsilon=2.0, accountant=accountant)
    plan = plan_privacy(dp, num_records=NUM_RECORDS, batch_size=BATCH_SIZE, epochs=1.0)
    private = run_private_steps(plan)
    expected = fresh_epsilon(accountant, noise=plan.noise_multiplier,
                             sample_rate=BATCH_SIZE / NUM_RECORDS, steps=100,
                             delta=1 / (10 * NUM_RECORDS))

    assert private.steps_taken == plan.steps
    assert private.epsilon() == pytest.approx(expected, rel=1e-12)
    assert plan.planned_epsilon == pytest.approx(expected, rel=1e-12)


def test_run_history_uses_plan_rate():
    dp = DPSettings(epsilon=None, noise_multiplier=1.0)
    plan = plan_privacy(dp, num_records=NUM_RECORDS, batch_size=BATCH_SIZE, epochs=0.1)
    private = run_private_steps(plan)

    assert private.accountant.history == [(1.0, BATCH_SIZE / NUM_RECORDS, plan.steps)]


@pytest.mark.parametrize(("accountant", "target"),
                         [("rdp", 0.5), ("rdp", 2.0), ("rdp", 8.0), ("prv", 2.0)])
def test_calibrated_noise_meets_target(accountant, target):
    dp = DPSettings(epsilon=target, accountant=accountant)
    plan = plan_privacy(dp, num_records=NUM_RECORDS, batch_size=BATCH_SIZE, epochs=1.0)
    epsilon = fresh_epsilon(accountant, noise=plan.noise_multiplier, sample_rate=plan.sample_rate,
                            steps=plan.steps, delta=plan.delta)

    assert epsilon <= target
    assert epsilon >= 0.98 * target


def test_sample_rate_is_batch_over_n():
    dp = DPSettings(epsilon=None, noise_multiplier=1.0)
    plan = plan_privacy(dp, num_records=NUM_RECORDS, batch_size=BATCH_SIZE, epochs=2.0)

    assert plan.sample_rate == BATCH_SIZE / NUM_RECORDS
    assert plan.steps == round(2.0 * NUM_RECORDS / BATCH_SIZE)
    assert plan.expected_batch_size == BATCH_SIZE


def test_default_delta_is_tenth_of_one_over_n():
    dp = DPSettings(epsilon=None, noise_multiplier=1.0)
    plan = plan_privacy(dp, num_records=NUM_RECORDS, batch_size=BATCH_SIZE, epochs=1.0)

    assert plan.delta == 1 / (10 * NUM_RECORDS)


@pytest.mark.parametrize("delta", [1 / NUM_RECORDS, 2 / NUM_RECORDS, 0.5])
def test_delta_at_least_one_over_n_raises(delta):
    dp = DPSettings(epsilon=1.0, delta=delta)
    message = re.escape(f"not below 1/N = {1 / NUM_RECORDS:g} for N = {NUM_RECORDS} records")

    with pytest.raises(ValueError, match=message):
        plan_privacy(dp, num_records=NUM_RECORDS, batch_size=BATCH_SIZE, epochs=1.0)


def test_batch_above_n_raises():
    dp = DPSettings(epsilon=1.0)

    with pytest.raises(ValueError, match="batch_size 20 exceeds the 12 training records"):
        plan_privacy(dp, num_records=12, batch_size=20, epochs=1.0)


def test_zero_steps_cost_nothing():
    epsilon = compute_epsilon(accountant="rdp", noise_multiplier=1.0, sample_rate=0.1, steps=0,
                              delta=1e-5)

    assert epsilon == 0.0


def test_poisson_mean_batch_matches_rate():
    sampler = PoissonBatchSampler(num_records=NUM_RECORDS, sample_rate=BATCH_SIZE / NUM_RECORDS,
                                  seed=4)
    sizes = [len(sampler.indices(step)) for step in range(2000)]

    assert abs(sum(sizes) / len(sizes) - BATCH_SIZE) < 0.5
    assert min(sizes) < BATCH_SIZE < max(sizes)


def test_poisson_draw_depends_on_step_only():
    first = PoissonBatchSampler(num_records=NUM_RECORDS, sample_rate=0.05, seed=9)
    second = PoissonBatchSampler(num_records=NUM_RECORDS, sample_rate=0.05, seed=9)
    for step in range(5):
        first.indices(step)

    assert first.indices(7) == second.indices(7)
    assert first.indices(7) != first.indices(8)


sample_rates = st.floats(min_value=1e-3, max_value=0.3)
noises = st.floats(min_value=0.5, max_value=5.0)
step_counts = st.integers(min_value=1, max_value=1000)
deltas = st.sampled_from([1e-5, 1e-6])


@settings(max_examples=15, deadline=None)
@given(q=sample_rates, noise=noises, steps=step_counts, extra=step_counts, delta=deltas)
def test_more_steps_never_lower_epsilon(q, noise, steps, extra, delta):
    fewer = compute_epsilon(accountant="rdp", noise_multiplier=noise, sample_rate=q,
                            steps=steps, delta=delta)
    more = compute_epsilon(accountant="rdp", noise_multiplier=noise, sample_rate=q,
                           steps=steps + extra, delta=delta)

    assert more >= fewer


@settings(max_examples=15, deadline=None)
@given(q=sample_rates, noise=noises, factor=st.floats(min_value=1.01, max_value=3.0),
       steps=step_counts, delta=deltas)
def test_less_noise_never_lowers_epsilon(q, noise, factor, steps, delta):
    quieter = compute_epsilon(accountant="rdp", noise_multiplier=noise * factor, sample_rate=q,
                              steps=steps, delta=delta)
    louder = compute_epsilon(accountant="rdp", noise_multiplier=noise, sample_rate=q,
                             steps=steps, delta=delta)

    assert louder >= quieter


@settings(max_examples=15, deadline=None)
@given(q=sample_rates, noise=noises, steps=step_counts, delta=deltas)
def test_rdp_epsilon_matches_fresh(q, noise, steps, delta):
    epsilon = compute_epsilon(accountant="rdp", noise_multiplier=noise, sample_rate=q,
                              steps=steps, delta=delta)
    expected = fresh_epsilon("rdp", noise=noise, sample_rate=q, steps=steps, delta=delta)

    assert epsilon == pytest.approx(expected, rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(q=sample_rates, noise=noises, steps=step_counts, delta=deltas)
def test_extra_orders_never_loosen(q, noise, steps, delta):
    epsilon = compute_epsilon(accountant="rdp", noise_multiplier=noise, sample_rate=q,
                              steps=steps, delta=delta)
    default = RDPAccountant()
    default.history = [(noise, q, steps)]

    assert epsilon <= default.get_epsilon(delta=delta)


@settings(max_examples=3, deadline=None)
@given(q=st.floats(min_value=0.01, max_value=0.2), noise=st.floats(min_value=0.8, max_value=3.0),
       steps=st.integers(min_value=1, max_value=200))
def test_prv_epsilon_matches_fresh(q, noise, steps):
    epsilon = compute_epsilon(accountant="prv", noise_multiplier=noise, sample_rate=q,
                              steps=steps, delta=1e-5)
    expected = fresh_epsilon("prv", noise=noise, sample_rate=q, steps=steps, delta=1e-5)

    assert epsilon == pytest.approx(expected, rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(num_records=st.integers(min_value=2, max_value=10**6), data=st.data())
def test_sample_rate_exact_for_any_n(num_records, data):
    batch_size = data.draw(st.integers(min_value=1, max_value=min(num_records, 4096)))
    dp = DPSettings(epsilon=None, noise_multiplier=1.0)
    plan = plan_privacy(dp, num_records=num_records, batch_size=batch_size, epochs=1.0)

    assert plan.sample_rate == batch_size / num_records
