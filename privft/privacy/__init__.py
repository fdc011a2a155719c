"""DP-SGD wiring around opacus: Poisson sampling, accounting, guards and the privacy ledger."""

from privft.privacy.accounting import (
    PrivacyPlan,
    compute_epsilon,
    default_delta,
    make_accountant,
    plan_privacy,
)
from privft.privacy.engine import PrivateTraining, make_private_training
from privft.privacy.sampling import PoissonBatchSampler

__all__ = [
    "PoissonBatchSampler",
    "PrivacyPlan",
    "PrivateTraining",
    "compute_epsilon",
    "default_delta",
    "make_accountant",
    "make_private_training",
    "plan_privacy",
]
