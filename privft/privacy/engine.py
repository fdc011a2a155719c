"""Wrap a model and optimizer for DP-SGD with opacus, keeping the accountant's assumptions.

privft assembles opacus's parts itself instead of calling ``PrivacyEngine.make_private``, which
derives the sample rate as 1 / len(data_loader) and so drifts from batch_size / N whenever N is
not a multiple of the batch size. Here the sampler, the optimizer's expected batch size and the
accountant all receive the one sample rate of the ``PrivacyPlan``.

With several processes each rank clips its own share of the logical batch. The clipped sums are
added across ranks and the Gaussian noise is drawn once for the whole job, on rank 0, so the
released update and the accountant's view are those of one process running the whole batch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from opacus import GradSampleModule
from opacus.accountants import IAccountant
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import (
    DistributedDPOptimizer,
    DistributedDPOptimizerFastGradientClipping,
    DPOptimizer,
    DPOptimizerFastGradientClipping,
)
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
    mode: str = "hooks"
    _cached_history: tuple = ()
    _cached_epsilon: float = 0.0

    def begin_step(self, step: int) -> None:
        """Seed the noise of logical step ``step`` so a resumed run adds the same noise."""
        self.optimizer.generator.manual_seed(step_seed(self.seed, step, "noise"))

    def restore_history(self, history: list[list[float]], *, step: int) -> None:
        """Restore a checkpoint's accountant history after checking it fits this run's plan.

        Every recorded step must have used the plan's noise multiplier and sample rate, and the
        history must count exactly ``step`` steps. Any other history means the data or the DP
        settings changed since the run started, so continuing would report a wrong epsilon.
        """
        restored = [tuple(h) for h in history]
        counted = sum(int(steps) for _, _, steps in restored)
        mismatched = [
            (noise, rate)
            for noise, rate, _ in restored
            if not (
                math.isclose(noise, self.plan.noise_multiplier, rel_tol=1e-9)
                and math.isclose(rate, self.plan.sample_rate, rel_tol=1e-9)
            )
        ]
        if mismatched or counted != step:
            noise, rate = (
                mismatched[0] if mismatched else (self.plan.noise_multiplier, self.plan.sample_rate)
            )
            raise RuntimeError(
                f"the checkpoint's privacy history ({counted} steps, noise {noise:.6g}, sample "
                f"rate {rate:.6g}) does not match this run (step {step}, noise "
                f"{self.plan.noise_multiplier:.6g}, sample rate {self.plan.sample_rate:.6g}); "
                "the data or DP settings changed since the run started. Start a new run folder"
            )
        self.accountant.history = restored

    def epsilon(self) -> float:
        """Epsilon spent so far at the plan's delta, memoized on the accountant history."""
        history = tuple(tuple(h) for h in self.accountant.history)
        if not history:
            return 0.0
        if history != self._cached_history:
            self._cached_epsilon = accountant_epsilon(self.accountant, self.plan.delta)
            self._cached_history = history
        return self._cached_epsilon

    def backward(self, losses: torch.Tensor) -> None:
        """Backpropagate one physical chunk's per-sample losses (shape [B]) for clipping.

        Hooks and functorch record per-sample gradients of the chunk's mean loss (opacus undoes
        the mean). Ghost clipping (Li et al., "Large Language Models Can Be Strong
        Differentially Private Learners", 2022) first backpropagates to get per-sample gradient
        norms only, then backpropagates the losses weighted by their clipping coefficients.
        """
        reduced = losses.mean() if len(losses) else losses.sum()
        if not isinstance(self.module, GradSampleModuleFastGradientClipping):
            reduced.backward()
            return
        reduced.backward(retain_graph=True)
        self.optimizer.zero_grad()
        coefficients = self.module.get_clipping_coef().to(losses.device)
        self.module.disable_hooks()
        try:
            (coefficients * losses).sum().backward()
        finally:
            self.module.enable_hooks()

    def empty_step(self) -> None:
        """Take a logical step whose Poisson draw selected no record.

        The clipped sum is zero, so the update is noise alone. The accountant still counts the
        step, because the sampled-Gaussian analysis covers every draw, empty ones included.
        """
        for param in self.optimizer.params:
            if isinstance(self.module, GradSampleModuleFastGradientClipping):
                param.grad = torch.zeros_like(param)
            else:
                param.grad_sample = torch.zeros(
                    (0, *param.shape), dtype=param.dtype, device=param.device
                )
        self.optimizer.signal_skip_step(do_skip=False)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def steps_taken(self) -> int:
        return sum(steps for _, _, steps in self.accountant.history)


def _check_supported(model: torch.nn.Module) -> None:
    """Raise UnsupportedModelError naming each module that opacus's validator rejects."""
    if not ModuleValidator.validate(model, strict=False):
        return
    problems = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue
        for error in ModuleValidator.validate(module, strict=False):
            problems.append(f"{name or 'the model'} ({type(module).__name__}): {error}")
    if not problems:
        # Only a composite module was rejected; report opacus's own messages.
        problems = [str(error) for error in ModuleValidator.validate(model, strict=False)]
    raise UnsupportedModelError(
        f"opacus cannot train this model privately: {'; '.join(problems[:5])}. Freeze those "
        "modules (for example train LoRA adapters with recipe dp_lora) or replace them"
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
            f"the optimizer contains {len(in_optimizer)} tensors but the model has "
            f"{len(trainable)} trainable ones, or they are different objects; build the "
            "optimizer after moving the model to its device and after adding adapters"
        )


def tied_trainable_parameters(model: torch.nn.Module) -> list[str]:
    """Names of trainable parameters that more than one module uses (tied embeddings)."""
    owners: dict[int, list[str]] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                owners.setdefault(id(param), []).append(f"{module_name}.{name}")
    return [names[0] for names in owners.values() if len(names) > 1]


# ``auto`` on the CPU picks functorch for adapters on a model at least this large. In
# benchmarks/dp_overhead (batch 8, sequence 128, 2 cores), DP-LoRA on a 135M-parameter
# Llama-shaped model cost 1.10x non-private LoRA with functorch and 1.22x with hooks. A second
# run, on a loaded machine, gave 1.19x and 1.33x. On the 4.9M-parameter built-in model the two
# modes were within noise (1.03x and 1.01x).
# NOTE: the crossing between those two sizes is not measured; 50M is a guess between them.
FUNCTORCH_MIN_PARAMETERS = 50_000_000
# Trainable share of all parameters below which a model counts as trained through adapters.
ADAPTER_MAX_TRAINABLE_SHARE = 0.1


def choose_grad_sample_mode(requested: str, model: torch.nn.Module) -> str:
    """Resolve ``auto`` and reject ghost clipping where opacus 1.6 cannot do it.

    ``auto`` picks ghost clipping on CUDA unless trainable parameters are tied. On the CPU,
    where ghost clipping saved memory but never time in privft's measurements, it picks
    functorch for adapters on models of ``FUNCTORCH_MIN_PARAMETERS`` or more and hooks
    otherwise.
    """
    tied = tied_trainable_parameters(model)
    if requested == "auto":
        if torch.cuda.is_available() and not tied:
            return "ghost"
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        adapters = trainable < ADAPTER_MAX_TRAINABLE_SHARE * total
        return "functorch" if adapters and total >= FUNCTORCH_MIN_PARAMETERS else "hooks"
    if requested == "ghost" and tied:
        raise UnsupportedModelError(
            f"ghost clipping cannot handle tied trainable parameters ({', '.join(tied)}): "
            "opacus would compute wrong per-sample norms for the shared matrix. Use "
            "grad_sample_mode hooks or functorch, untie the embeddings, or freeze them "
            "(recipe dp_lora)"
        )
    return requested


class _SumAcrossRanks:
    """Replace opacus's cross-rank mean with a sum, for its distributed DP optimizers.

    opacus's distributed optimizers add the noise on rank 0 only and then average the ranks'
    gradients, which fits an expected batch size given per rank. privft passes the expected
    batch of the whole job (q * N) instead, so the ranks' gradients must be added, not averaged.
    """

    params: list[torch.nn.Parameter]

    def reduce_gradients(self) -> None:
        groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for param in self.params:
            if param.requires_grad and param.grad is not None:
                groups.setdefault((param.grad.dtype, param.grad.device), []).append(param.grad)
        for grads in groups.values():
            flat = torch.cat([grad.reshape(-1) for grad in grads])
            # Sum over ranks of (clipped sum, plus the one noise draw on rank 0) / (q * N).
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            for grad, summed in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                grad.copy_(summed.view_as(grad))


class JobDPOptimizer(_SumAcrossRanks, DistributedDPOptimizer):
    """DP-SGD step of a multi-process job: noise once on rank 0, sum across ranks."""


class JobDPOptimizerFastGradientClipping(
    _SumAcrossRanks, DistributedDPOptimizerFastGradientClipping
):
    """Ghost-clipping counterpart of ``JobDPOptimizer``."""


def _optimizer_class(mode: str, distributed: bool) -> type[DPOptimizer]:
    if mode == "ghost":
        return (
            JobDPOptimizerFastGradientClipping if distributed else DPOptimizerFastGradientClipping
        )
    return JobDPOptimizer if distributed else DPOptimizer


def _broadcast_trainable(model: torch.nn.Module) -> None:
    """Start every rank from rank 0's trainable weights."""
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                dist.broadcast(param.data, src=0)


def make_private_training(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    plan: PrivacyPlan,
    grad_sample_mode: str,
    seed: int,
    distributed: bool = False,
) -> PrivateTraining:
    """Wrap ``model`` for per-sample gradients and ``optimizer`` for clipping, noise, accounting.

    ``distributed=True`` needs an initialised process group: every rank then passes the same
    ``plan``, runs the same logical steps on its own share of each Poisson draw, and gets the same
    update and the same accountant history.
    """
    # opacus refuses modules in eval mode, and from_pretrained returns eval mode.
    model.train()
    _check_supported(model)
    _check_optimizer_matches(model, optimizer)

    mode = choose_grad_sample_mode(grad_sample_mode, model)
    if mode == "ghost":
        module = GradSampleModuleFastGradientClipping(
            model,
            batch_first=True,
            loss_reduction="mean",
            strict=True,
            max_grad_norm=plan.max_grad_norm,
            use_ghost_clipping=True,
        )
    else:
        module = GradSampleModule(
            model,
            batch_first=True,
            loss_reduction="mean",
            strict=True,
            force_functorch=mode == "functorch",
        )
    if distributed:
        # Identical starting weights on every rank keep the ranks' updates identical.
        _broadcast_trainable(model)
    device = next((p.device for p in model.parameters() if p.requires_grad), torch.device("cpu"))
    dp_optimizer = _optimizer_class(mode, distributed)(
        optimizer,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        # The update divides by q * N, never by the realised Poisson batch size. With several
        # ranks q * N is the whole job's expected batch, because the ranks' sums are added.
        expected_batch_size=plan.expected_batch_size,
        loss_reduction="mean",
        # On the parameters' device: torch draws CUDA noise only from a CUDA generator.
        generator=torch.Generator(device=device),
    )
    accountant = make_accountant(plan.accountant)
    # One accountant step per noised logical step, at the plan's sample rate. Every rank keeps
    # its own copy of the same history, since each steps once per logical step at that rate.
    dp_optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate))
    logger.info("DP-SGD with %s per-sample gradients", mode)
    return PrivateTraining(module, dp_optimizer, accountant, plan, seed, mode)
