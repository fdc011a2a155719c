"""The training loop shared by every recipe.

Recipes differ in what they make trainable (all weights or LoRA adapters) and in how gradients
are privatized (not at all, or DP-SGD through opacus). Everything else is this loop: logical
batches from a seeded sampler, memory-bounded physical chunks, one optimizer step per logical
batch, a JSONL log, resumable checkpoints, and the final checkpoint and run info.

With several processes (``accelerate launch``, see privft.distributed) every rank draws the same
logical batch and trains on its own share of it. The ranks' gradients are combined once per
logical batch, so the update is the one a single process would make on the whole batch. Only rank
0 writes files. A non-private run with ``sharding: fsdp`` splits the model over the ranks
(privft.distributed.shard_model) instead of copying it to each.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.distributed.tensor import DTensor

from privft.config import TrainConfig, save_config
from privft.data import load_dataset_dir
from privft.data.encoding import CausalLMCollator, EncodedRecord, encode_records, per_sample_loss
from privft.distributed import Job, mark_failed, parameter_digest, shard_model, start_job
from privft.models import check_max_length, count_parameters, load_model, load_tokenizer
from privft.privacy import PoissonBatchSampler, PrivateTraining, make_private_training, plan_privacy
from privft.privacy.ledger import write_privacy_ledger
from privft.privacy.sampling import ShuffledBatchSampler, rank_share, step_seed
from privft.progress import ProgressBar
from privft.recipes.checkpoint import (
    TrainerState,
    final_state_dict,
    load_training_state,
    restore_training_state,
    save_final_model,
    save_training_state,
)
from privft.recipes.resources import ResourceMonitor
from privft.recipes.runinfo import RunInfo, read_run_info, write_run_info
from privft.storage import append_jsonl, atomic_write_text
from privft.tracking import open_run_tracker, train_values

logger = logging.getLogger(__name__)


@dataclass
class StepOutput:
    loss: float
    records: int
    tokens: int
    lr: float


class Trainer:
    """Run one recipe's training, resuming from the run folder's last checkpoint if any."""

    def __init__(self, config: TrainConfig, *, make_trainable, show_progress: bool = True):
        self.config = config
        self.make_trainable = make_trainable
        self.show_progress = show_progress
        self.run_dir = Path(config.out)
        self.private: PrivateTraining | None = None
        self.job: Job | None = None
        # True when the model's parameters are split over the ranks (sharding: fsdp).
        self.sharded = False
        self.rank_records = 0
        self.tracker = None

    # 1. Setup -------------------------------------------------------------------------------
    def _setup(self) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        if self.job is None:
            self.job = start_job()
        self.accelerator: Accelerator = self.job.accelerator
        self.device = self.accelerator.device

        dataset = load_dataset_dir(Path(config.data))
        self.tokenizer = load_tokenizer(config.model)
        self.records: list[EncodedRecord] = encode_records(
            dataset.train, self.tokenizer, max_length=config.max_length
        )
        self.collate = CausalLMCollator(self.tokenizer.pad_token_id)

        # Move to the device before adding adapters and before building the optimizer, so that
        # neither keeps references to stale tensors.
        model = load_model(config.model).to(self.device)
        check_max_length(model, config.max_length)
        self.model = self.make_trainable(model, config)
        self.model.train()
        self.trainable, self.total_params = count_parameters(self.model)
        # Sharding turns the parameters into DTensors, so it comes before the optimizer is built.
        self._shard_if_requested()
        params = [p for p in self.model.parameters() if p.requires_grad]
        raw_optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self._plan_steps()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(raw_optimizer, self._lr_factor)

        if config.uses_dp:
            self.private = make_private_training(
                self.model,
                raw_optimizer,
                plan=self.plan,
                grad_sample_mode=config.dp.grad_sample_mode,
                seed=config.seed,
                # Several ranks: clipped sums added across ranks, noise once per logical step.
                distributed=self.job.distributed,
            )
            self.forward_module = self.private.module
            self.optimizer = self.private.optimizer
        elif self.sharded:
            # FSDP2 hooks into the model itself, so it needs no wrapper from accelerate.
            self.forward_module, self.optimizer = self.model, raw_optimizer
        else:
            # With several processes this wraps the model in DistributedDataParallel.
            self.forward_module, self.optimizer = self.accelerator.prepare(
                self.model, raw_optimizer
            )

    def _shard_if_requested(self) -> None:
        if self.config.sharding != "fsdp":
            return
        if not self.job.distributed:
            logger.info("sharding fsdp with one process: training the unsharded model")
            return
        shard_model(self.model, self.device)
        self.sharded = True

    def _plan_steps(self) -> None:
        config, n = self.config, len(self.records)
        shuffled = ShuffledBatchSampler(
            num_records=n, batch_size=config.batch_size, seed=config.seed
        )
        if config.uses_dp:
            self.plan = plan = plan_privacy(
                config.dp, num_records=n, batch_size=config.batch_size, epochs=config.epochs
            )
            # The schedule follows the plan; the loop stops early if the budget runs out first.
            self.total_steps, self.stop_step = plan.steps, plan.steps_to_run
            self.sampler = (
                shuffled
                if plan.sampling == "shuffle"
                else PoissonBatchSampler(
                    num_records=n, sample_rate=plan.sample_rate, seed=config.seed
                )
            )
            self._warn_about_plan(plan)
        else:
            self.sampler = shuffled
            self.total_steps = max(1, round(config.epochs * shuffled.steps_per_epoch))
            self.stop_step = self.total_steps
        self.warmup_steps = int(config.warmup_ratio * self.total_steps)

    def _warn_about_plan(self, plan) -> None:
        if not self.job.is_main:
            return
        for reason in plan.approximate_reasons:
            logger.warning("the reported epsilon is approximate: %s", reason)
        if plan.steps_to_run < plan.steps:
            logger.warning(
                "the epsilon budget %g allows %d of the %d planned steps; training will stop "
                "after step %d and report the epsilon of the steps taken",
                plan.budget,
                plan.steps_to_run,
                plan.steps,
                plan.steps_to_run,
            )

    def _lr_factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        remaining = self.total_steps - self.warmup_steps
        return max(0.0, 1.0 - (step - self.warmup_steps) / max(1, remaining))

    # 2. One logical step ----------------------------------------------------------------------
    def _train_step(self, step: int) -> StepOutput:
        # Every rank draws the whole logical batch (the same seeded draw) and keeps its share.
        # Under DP the shares' union is the Poisson sample at rate q of a one-process run.
        drawn = self.sampler.indices(step)
        job = self.job
        indices = rank_share(drawn, rank=job.rank, world_size=job.world_size)
        cap = self.config.physical_batch_size
        chunks = [indices[i : i + cap] for i in range(0, len(indices), cap)]
        fillers = self._filler_chunks(len(drawn), len(chunks))
        torch.manual_seed(step_seed(self.config.seed, step, "dropout"))
        if self.private is not None:
            self.private.begin_step(step)
        lr = self.scheduler.get_last_lr()[0]
        self.rank_records += len(indices)

        loss_sum, tokens = 0.0, 0
        for number, chunk in enumerate(chunks):
            last = number == len(chunks) + fillers - 1
            with self._gradient_sync(last):
                losses, chunk_tokens = self._forward(chunk)
                loss_sum += float(losses.detach().sum())
                tokens += chunk_tokens
                if self.private is not None:
                    # Per-sample gradients (or norms) of each sample's own mean loss.
                    self.private.backward(losses)
                    self.monitor.sample()
                    # Only the last chunk of a logical batch adds noise and steps the accountant.
                    self.optimizer.signal_skip_step(do_skip=number < len(chunks) - 1)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                else:
                    # DistributedDataParallel, and FSDP2's reduce-scatter, average over ranks.
                    # Scaled by world_size, the result is the gradient of the whole logical
                    # batch's mean loss.
                    self.accelerator.backward(losses.sum() * job.world_size / len(drawn))
                    self.monitor.sample()
        for number in range(fillers):
            with self._gradient_sync(number == fillers - 1):
                losses, _ = self._forward(drawn[:1])
                # Weight zero: the filler adds nothing to the gradients or the loss.
                self.accelerator.backward(losses.sum() * 0.0)
        if self.private is not None and not chunks:
            # An empty draw, or an empty share on this rank, still takes the step: the noise is
            # drawn once (on rank 0) and the accountant counts the step.
            self.private.empty_step()
        if self.private is None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if job.distributed:
            loss_sum, summed_tokens = job.sum([loss_sum, tokens])
            tokens = int(summed_tokens)
        mean_loss = loss_sum / len(drawn) if drawn else math.nan
        return StepOutput(mean_loss, len(drawn), tokens, lr)

    def _forward(self, chunk: list[int]) -> tuple[torch.Tensor, int]:
        """Per-sample losses of one physical chunk, and its number of tokens."""
        batch = self.collate([self.records[i] for i in chunk])
        batch = {k: v.to(self.device) for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = self.forward_module(**batch).logits
        return per_sample_loss(logits, labels), int(batch["attention_mask"].sum())

    def _filler_chunks(self, drawn: int, chunks: int) -> int:
        """Chunks of weight zero this rank adds so that every rank runs as many chunks.

        DistributedDataParallel and FSDP communicate in every forward and synchronized backward
        (FSDP gathers each block's weights), so the ranks of a non-private run must run the same
        number of chunks. Rank 0 has the largest share. The DP recipes communicate once per
        logical step and need no fillers.
        """
        if self.private is not None or not self.job.distributed:
            return 0
        largest_share = -(-drawn // self.job.world_size)
        return -(-largest_share // self.config.physical_batch_size) - chunks

    def _gradient_sync(self, last: bool):
        """Skip DistributedDataParallel's gradient averaging on all but the last chunk.

        A sharded model averages after every chunk instead. FSDP2 would otherwise keep the
        unsharded gradient of every parameter on each rank until the last chunk, as much memory
        as the whole model. The sum of per-chunk averages is the same gradient, at the cost of
        one reduce-scatter per chunk.
        """
        if last or self.private is not None or self.sharded:
            return nullcontext()
        return self.accelerator.no_sync(self.forward_module)

    # 3. Logging and checkpoints ---------------------------------------------------------------
    def _epsilon(self) -> float | None:
        return self.private.epsilon() if self.private is not None else None

    def _log(self, step: int, out: StepOutput, tokens_per_s: float) -> None:
        if not self.job.is_main:
            return
        row = {
            "step": step,
            "loss": None if math.isnan(out.loss) else round(out.loss, 6),
            "lr": out.lr,
            "epsilon": self._epsilon(),
            "batch_records": out.records,
            "tokens_per_s": round(tokens_per_s, 2),
        }
        append_jsonl(self.run_dir / "train_log.jsonl", row)
        if self.tracker is not None:
            self.tracker.log(train_values(row), step)

    def _state(self, step: int) -> TrainerState:
        history = [list(h) for h in self.private.accountant.history] if self.private else []
        return TrainerState(
            step=step,
            tokens_seen=self.tokens_seen,
            elapsed_s=self.previous_elapsed + self.monitor.elapsed_s,
            peak_memory_mb=max(self.previous_peak_mb, self.monitor.peak_mb),
            accountant_history=history,
        )

    def _checkpoint(self, step: int) -> None:
        # A sharded model's state is gathered from every rank, and rank 0 writes it.
        if not self.job.is_main and not self.sharded:
            return
        save_training_state(
            self.run_dir,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=self._state(step),
        )

    def _resume(self) -> int:
        # Rank 0 picks the checkpoint and every rank loads that one.
        saved = self.job.on_main(lambda: load_training_state(self.run_dir))
        self.tokens_seen, self.previous_elapsed, self.previous_peak_mb = 0, 0.0, 0.0
        if saved is None:
            if self.job.is_main:
                (self.run_dir / "train_log.jsonl").unlink(missing_ok=True)
            return 0
        state, folder = saved
        restore_training_state(
            folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
        )
        if self.private is not None:
            self.private.restore_history(state.accountant_history, step=state.step)
        self.tokens_seen = state.tokens_seen
        self.previous_elapsed = state.elapsed_s
        self.previous_peak_mb = state.peak_memory_mb
        if self.job.is_main:
            _truncate_log(self.run_dir / "train_log.jsonl", state.step)
        logger.info("resuming %s at step %d of %d", self.run_dir, state.step, self.total_steps)
        return state.step

    # 4. The loop ------------------------------------------------------------------------------
    def fit(self) -> RunInfo:
        # Fails on every rank when the launcher started another number of processes than expected.
        self.job = job = start_job()
        if job.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # Every rank follows rank 0's reading of the run folder.
        info = job.on_main(lambda: read_run_info(self.run_dir))
        if info is not None and info.status == "completed":
            logger.info("%s already completed; nothing to train", self.run_dir)
            return info
        info = RunInfo.started(self.config)
        if job.is_main:
            save_config(self.config, self.run_dir / "config.yaml")
            write_run_info(self.run_dir, info)
        try:
            # Only rank 0 opens the trackers the config names (report_to), all offline.
            self.tracker = open_run_tracker(self.run_dir, self.config, is_main=job.is_main)
            self._setup()
            self.monitor = ResourceMonitor(self.device)
            start = self._resume()
            self._loop(start)
            self._finish(info)
        except BaseException as err:
            mark_failed()
            info.status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            info.error = f"{type(err).__name__}: {err}"
            if job.is_main:
                write_run_info(self.run_dir, info)
            raise
        finally:
            if self.tracker is not None:
                self.tracker.close()
        return info

    def _loop(self, start: int) -> None:
        description = f"train {self.config.recipe}"
        shown = self.show_progress and self.job.is_main
        dynamics = None
        if self.config.eval_every and self.job.is_main:
            from privft.evaluation.dynamics import DynamicsRecorder

            # Measures in eval mode without gradients, hooks or random draws; see its module.
            dynamics = DynamicsRecorder(
                self.config,
                self.tokenizer,
                self.model,
                wrapper=self.forward_module,
                start_step=start,
            )
        with ProgressBar(description, self.stop_step, enabled=shown) as bar:
            bar.update(start)
            window_tokens, window_start = 0, self.monitor.elapsed_s
            for step in range(start, self.stop_step):
                out = self._train_step(step)
                self.tokens_seen += out.tokens
                window_tokens += out.tokens
                done = step + 1
                if done % self.config.log_every == 0 or done == self.stop_step:
                    rate = window_tokens / max(1e-9, self.monitor.elapsed_s - window_start)
                    self._log(done, out, rate)
                    window_tokens, window_start = 0, self.monitor.elapsed_s
                if dynamics is not None and (
                    done % self.config.eval_every == 0 or done == self.stop_step
                ):
                    dynamics.record(done, epsilon=self._epsilon())
                if done % self.config.checkpoint_every == 0 and done < self.stop_step:
                    self._checkpoint(done)
                fields = {"loss": out.loss}
                if self.private is not None and done % self.config.log_every == 0:
                    fields["eps"] = self._epsilon()
                bar.update(1, **fields)

    def _finish(self, info: RunInfo) -> None:
        job = self.job
        ranks = self._check_ranks_agree() if job.distributed else None
        state = self._state(self.stop_step)
        # The largest peak of any rank: each has a full copy of the model, or an equal slice.
        peak_memory_mb = job.max(state.peak_memory_mb)
        # Every rank takes part in gathering a sharded model's weights, and rank 0 gets them.
        final_weights = final_state_dict(self.model) if self.sharded else None
        if not job.is_main:
            # Leave with rank 0's finished run info, once rank 0 has written everything.
            vars(info).update(vars(job.broadcast(None)))
            return

        self._save_final_model(final_weights)
        extra = {}
        if self.private is not None:
            self._check_budget()
            ledger = write_privacy_ledger(self.run_dir, self.private)
            extra = {"epsilon_approximate": ledger["approximate"]}
            if self.stop_step < self.total_steps:
                extra["stopped_by"] = "epsilon_budget"
        if ranks is not None:
            sharding = "fsdp" if self.sharded else "none"
            info.environment["distributed"] = {
                **job.describe(),
                "sharding": sharding,
                "ranks": ranks,
            }

        info.complete(
            steps=self.stop_step,
            planned_steps=self.total_steps,
            train_time_s=state.elapsed_s,
            peak_memory_mb=peak_memory_mb,
            memory_method=self.monitor.method,
            tokens_seen=state.tokens_seen,
            trainable_params=self.trainable,
            total_params=self.total_params,
            num_train_records=len(self.records),
            epsilon=self._epsilon(),
            device=str(self.device),
            world_size=job.world_size,
            **extra,
        )

        write_run_info(self.run_dir, info)
        shutil.rmtree(self.run_dir / "state", ignore_errors=True)
        job.broadcast(info)

    def _check_budget(self) -> None:
        """Refuse to report a run whose accountant passed the budget the plan was built for."""
        plan = self.private.plan
        spent = self.private.epsilon()
        if plan.budget is not None and spent > plan.budget:
            raise RuntimeError(
                f"the run spent epsilon {spent:.6g}, above its budget {plan.budget:g}; the "
                "accountant counted more steps than planned. Start a new run folder"
            )

    def _check_ranks_agree(self) -> list[dict]:
        """Gather the ranks' parameter digests, epsilons and record counts, and check they agree."""
        mine = {
            "rank": self.job.rank,
            "parameter_sha256": parameter_digest(self.model),
            # Parameter elements stored on this rank: a slice of the model when it is sharded.
            "local_parameters": sum(_local(p).numel() for p in self.model.parameters()),
            "epsilon": self._epsilon(),
            "records": self.rank_records,
        }
        ranks = self.job.gather(mine)
        if len({r["parameter_sha256"] for r in ranks}) != 1:
            raise RuntimeError(
                "the ranks ended with different trainable parameters, so the gradients were not "
                "combined the same way on every rank. Report this with the launch command"
            )
        if len({r["epsilon"] for r in ranks}) != 1:
            raise RuntimeError(
                f"the ranks' accountants disagree (epsilons {[r['epsilon'] for r in ranks]}). "
                "Every rank must step its accountant once per logical step at the same rate"
            )
        return ranks

    def _save_final_model(self, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        save_final_model(self.run_dir, self.model, self.tokenizer, state_dict)


def _local(param: torch.Tensor) -> torch.Tensor:
    """Return the part of a parameter stored on this rank: its slice if sharded, else itself."""
    return param.to_local() if isinstance(param, DTensor) else param


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint being resumed from."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    atomic_write_text(path, "".join(line + "\n" for line in kept))
