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

    @property
    def planned_epsilon(self) -> float:
        return compute_epsilon(
            accountant=self.accountant,
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            steps=self.steps,
            delta=self.delta,
        )


def plan_privacy(
    settings: DPSettings, *, num_records: int, batch_size: int, epochs: float
) -> PrivacyPlan:
    """Fix sample rate, step count, delta and noise for a run before it starts.

    The sample rate is the expected logical batch over the dataset size, exactly what the
    Poisson sampler uses; the step count is epochs / sample rate, rounded to whole steps. With a
    target epsilon the noise multiplier is the smallest that keeps those steps within it.
    """
    if batch_size > num_records:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {num_records} training records; lower batch_size"
        )
    sample_rate = batch_size / num_records
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
    )
