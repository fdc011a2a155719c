"""Privacy accounting: noise calibration for a planned run and epsilon for the steps taken.

Both go through opacus's accountants (RDP: Mironov, "Renyi Differential Privacy", 2017, with
the subsampled Gaussian analysis of Mironov, Talwar and Zhang, 2019; PRV: Gopi, Lee and Wutschitz,
"Numerical Composition of Differential Privacy", 2021).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from opacus.accountants import IAccountant, RDPAccountant, create_accountant
from opacus.accountants.utils import get_noise_multiplier

from privft.config import DPSettings

# opacus's default RDP orders stop at 63; with few steps and a large epsilon the best order lies
# above that, so the bound would be looser than it needs to be.
RDP_ALPHAS = [*RDPAccountant.DEFAULT_ALPHAS, 80, 96, 128, 192, 256, 384, 512]


def _epsilon_options(accountant: str) -> dict[str, Any]:
    return {"alphas": RDP_ALPHAS} if accountant == "rdp" else {}


def accountant_epsilon(accountant: IAccountant, delta: float) -> float:
    """Epsilon of an accountant's history at ``delta``, with privft's RDP orders."""
    return float(accountant.get_epsilon(delta=delta, **_epsilon_options(accountant.mechanism())))


def make_accountant(name: str) -> IAccountant:
    """Create an opacus accountant by registered name (``rdp`` or ``prv``)."""
    return create_accountant(mechanism=name)


def default_delta(num_records: int) -> float:
    """Return 1 / (10 N): below 1/N, the level at which leaking one whole record is allowed."""
    return 1.0 / (10 * num_records)


def compute_epsilon(
    *, accountant: str, noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> float:
    """Return the epsilon of ``steps`` Poisson-subsampled Gaussian steps, from scratch."""
    if steps == 0:
        return 0.0
    fresh = make_accountant(accountant)
    fresh.history = [(noise_multiplier, sample_rate, steps)]
    return accountant_epsilon(fresh, delta)


@dataclass(frozen=True)
class PrivacyPlan:
    """The DP parameters a run is planned with, fixed before its first step."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    max_grad_norm: float
    accountant: str
    target_epsilon: float | None
    expected_batch_size: int
    num_records: int
    # The maximum epsilon the run may spend, and the number of steps that stays within it.
    budget: float | None = None
    budget_steps: int | None = None
    sampling: str = "poisson"

    @property
    def steps_to_run(self) -> int:
        """Planned steps, or fewer where the epsilon budget runs out first."""
        return self.steps if self.budget_steps is None else min(self.steps, self.budget_steps)

    @property
    def approximate_reasons(self) -> list[str]:
        """Why the accountant's epsilon is not a proven bound for this plan (empty if it is)."""
        if self.sampling == "shuffle":
            return [
                "batches are fixed-size slices of a shuffled epoch, not Poisson samples; the "
                "accountant's subsampled-Gaussian analysis assumes Poisson sampling and can "
                'understate the epsilon of shuffled batches (Chua et al., "How Private are '
                'DP-SGD Implementations?", 2024)'
            ]
        return []

    @property
    def planned_epsilon(self) -> float:
        return compute_epsilon(
            accountant=self.accountant,
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            steps=self.steps,
            delta=self.delta,
        )


def steps_within_budget(
    *,
    accountant: str,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    budget: float,
) -> int:
    """Return the largest step count up to ``steps`` whose epsilon stays at or under ``budget``.

    Epsilon grows with every step, so a binary search over the step count finds it.
    """

    def spent(count: int) -> float:
        return compute_epsilon(
            accountant=accountant,
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            steps=count,
            delta=delta,
        )

    if spent(steps) <= budget:
        return steps
    within, beyond = 0, steps
    while beyond - within > 1:
        middle = (within + beyond) // 2
        if spent(middle) <= budget:
            within = middle
        else:
            beyond = middle
    return within


def plan_privacy(
    settings: DPSettings, *, num_records: int, batch_size: int, epochs: float
) -> PrivacyPlan:
    """Fix sample rate, step count, delta, noise and budget for a run before it starts.

    The sample rate is the expected logical batch over the dataset size, exactly what the
    Poisson sampler uses; the step count is epochs / sample rate, rounded to whole steps (with
    shuffled batches: epochs times the batches per epoch). With a target epsilon the noise
    multiplier is the smallest that keeps those steps within it. The budget (``epsilon_budget``,
    else the target) sets how many of the planned steps may run.
    """
    if batch_size > num_records:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {num_records} training records; lower batch_size"
        )
    sample_rate = batch_size / num_records
    if settings.sampling == "shuffle":
        steps = max(1, round(epochs * math.ceil(num_records / batch_size)))
    else:
        steps = max(1, round(epochs / sample_rate))
    delta = settings.delta if settings.delta is not None else default_delta(num_records)
    if delta >= 1.0 / num_records:
        raise ValueError(
            f"dp.delta {delta:g} is not below 1/N = {1 / num_records:g} for N = "
            f"{num_records} records; such a delta allows leaking a whole record. "
            "Leave delta unset for 1/(10 N) or choose a smaller one"
        )
    if settings.noise_multiplier is not None:
        noise = settings.noise_multiplier
    else:
        noise = get_noise_multiplier(
            target_epsilon=settings.epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=settings.accountant,
            epsilon_tolerance=0.01,
            **_epsilon_options(settings.accountant),
        )
    if not math.isfinite(noise) or noise <= 0:
        raise ValueError(f"noise calibration failed (got {noise}); check epsilon and delta")
    budget = settings.epsilon_budget if settings.epsilon_budget is not None else settings.epsilon
    budget_steps = None
    if budget is not None:
        budget_steps = steps_within_budget(
            accountant=settings.accountant,
            noise_multiplier=float(noise),
            sample_rate=sample_rate,
            steps=steps,
            delta=delta,
            budget=budget,
        )
        if budget_steps == 0:
            one_step = compute_epsilon(
                accountant=settings.accountant,
                noise_multiplier=float(noise),
                sample_rate=sample_rate,
                steps=1,
                delta=delta,
            )
            fix = (
                f"the noise was calibrated for the target epsilon {settings.epsilon:g}; set "
                "dp.epsilon_budget at or above the target, or lower dp.epsilon"
                if settings.noise_multiplier is None
                else "raise dp.epsilon_budget or dp.noise_multiplier"
            )
            raise ValueError(
                f"dp.epsilon_budget {budget:g} is below the epsilon of a single step "
                f"({one_step:.4g} at noise multiplier {noise:.4g}, sample rate "
                f"{sample_rate:.4g}); {fix}"
            )
    return PrivacyPlan(
        noise_multiplier=float(noise),
        sample_rate=sample_rate,
        steps=steps,
        delta=delta,
        max_grad_norm=settings.max_grad_norm,
        accountant=settings.accountant,
        target_epsilon=settings.epsilon,
        expected_batch_size=batch_size,
        num_records=num_records,
        budget=budget,
        budget_steps=budget_steps,
        sampling=settings.sampling,
    )
