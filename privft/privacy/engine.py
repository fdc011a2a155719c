"""Wrap a model and optimizer for DP-SGD with opacus, keeping the accountant's assumptions.

privft assembles opacus's parts itself instead of calling ``PrivacyEngine.make_private``, which
derives the sample rate as 1 / len(data_loader) and so drifts from batch_size / N whenever N is
not a multiple of the batch size. Here the sampler, the optimizer's expected batch size and the
accountant all receive the one sample rate of the ``PrivacyPlan``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from opacus import GradSampleModule
from opacus.accountants import IAccountant
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator

from privft.privacy.accounting import PrivacyPlan, accountant_epsilon, make_accountant
from privft.privacy.sampling import step_seed

logger = logging.getLogger(__name__)


class UnsupportedModelError(ValueError):
    """The model has a trainable layer for which opacus cannot compute per-sample gradients."""


@dataclass
class PrivateTraining:
    """The DP-wrapped model, optimizer and accountant of one run."""

    module: GradSampleModule
    optimizer: DPOptimizer
    accountant: IAccountant
    plan: PrivacyPlan
    seed: int
    _cached_history: tuple = ()
    _cached_epsilon: float = 0.0

    def begin_step(self, step: int) -> None:
        """Seed the noise of logical step ``step`` so a resumed run adds the same noise."""
        self.optimizer.generator.manual_seed(step_seed(self.seed, step, "noise"))

    def epsilon(self) -> float:
        """Epsilon spent so far at the plan's delta, memoized on the accountant history."""
        history = tuple(tuple(h) for h in self.accountant.history)
        if not history:
            return 0.0
        if history != self._cached_history:
            self._cached_epsilon = accountant_epsilon(self.accountant, self.plan.delta)
            self._cached_history = history
        return self._cached_epsilon

    @property
    def steps_taken(self) -> int:
        return sum(steps for _, _, steps in self.accountant.history)


def _check_supported(model: torch.nn.Module) -> None:
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        names = "; ".join(str(p) for p in problems[:5])
        raise UnsupportedModelError(
            f"opacus cannot train this model privately: {names}. Freeze those modules "
            "(for example train LoRA adapters with recipe dp_lora) or replace them"
        )


def _check_optimizer_matches(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """The optimizer must hold exactly the model's trainable tensors, by identity.

    An optimizer built before parameters were moved or wrapped points at stale tensors and
    silently never updates the model (the LoRA-under-DP failure reported against opacus 1.5).
    """
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if trainable != in_optimizer:
        raise RuntimeError(
            f"the optimizer holds {len(in_optimizer)} tensors but the model has {len(trainable)} "
            "trainable ones, or they are different objects; build the optimizer after moving "
            "the model to its device and after adding adapters"
        )


def make_private_training(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    plan: PrivacyPlan,
    grad_sample_mode: str,
    seed: int,
) -> PrivateTraining:
    """Wrap ``model`` for per-sample gradients and ``optimizer`` for clipping, noise, accounting."""
    # opacus refuses modules in eval mode, and from_pretrained returns eval mode.
    model.train()
    _check_supported(model)
    _check_optimizer_matches(model, optimizer)

    module = GradSampleModule(
        model,
        batch_first=True,
        loss_reduction="mean",
        strict=True,
        force_functorch=grad_sample_mode == "functorch",
    )
    dp_optimizer = DPOptimizer(
        optimizer,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        # The update divides by q * N, never by the realised Poisson batch size.
        expected_batch_size=plan.expected_batch_size,
        loss_reduction="mean",
        generator=torch.Generator(),
    )
    accountant = make_accountant(plan.accountant)
    # One accountant step per noised logical step, at the plan's sample rate.
    dp_optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate))
    return PrivateTraining(module, dp_optimizer, accountant, plan, seed)
