"""The Ray backend of sweeps: one Ray task per run, on a local instance or a cluster."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from privft.sweep.execute import run_one
from privft.sweep.plan import RAY_INSTALL, EvalSettings, PlannedRun, RunOutcome, Sweep, SweepError


def import_ray():
    """Import Ray, or raise a SweepError that names the install command."""
    try:
        import ray
    except ImportError:
        raise SweepError(
            f"the ray backend needs Ray, which is not installed; install it with `{RAY_INSTALL}`, "
            "or run the sweep with --backend local"
        ) from None
    return ray


def _ray_task(run: PlannedRun, settings: EvalSettings, num_threads: int, cwd: str) -> RunOutcome:
    import socket

    import torch

    # Paths in a sweep are relative to the folder the sweep started in, so every task runs
    # there. On a multi-node cluster, that folder must be on a shared filesystem.
    if not Path(cwd).is_dir():
        raise SweepError(
            f"folder {cwd} not found on Ray node {socket.gethostname()}; the nodes of a Ray "
            "cluster need the sweep's folders on a shared filesystem at the same path"
        )
    os.chdir(cwd)
    torch.set_num_threads(max(1, num_threads))
    return run_one(run, settings)


def run_on_ray(
    ray,
    sweep: Sweep,
    runs: list[PlannedRun],
    address: str | None,
    record: Callable[[RunOutcome], None],
) -> None:
    # Ray reads this before it starts; a sweep sends no usage reports unless the user opts in.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        ray.init(include_dashboard=False, configure_logging=False)
    else:
        ray.init(address=address, configure_logging=False)
    try:
        resources = sweep.resources
        task = ray.remote(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            max_retries=resources.max_retries,
        )(_ray_task)
        threads = int(resources.num_cpus)
        cwd = str(Path.cwd())
        pending = {task.remote(run, sweep.eval, threads, cwd): run for run in runs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as err:
                outcome = RunOutcome(run.name, run.run_dir, "failed", error=str(err).strip())
            record(outcome)
    finally:
        ray.shutdown()
