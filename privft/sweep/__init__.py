"""Sweeps: a YAML grid of settings expanded into ordinary privft runs, each trained and evaluated.

A sweep file fixes some training settings (``base``) and lists values for the grid axes
(``grid``): recipe, epsilon (DP recipes only), LoRA rank (LoRA recipes only), learning rate and
seed, crossed with every dataset under ``datasets``. Each point of the grid is one run folder
under ``OUT/runs/`` whose name is built from its grid values only, so adding values to the grid
never renames the runs that already exist.

Running a sweep skips runs that have a ``results.json``, resumes unfinished ones (the trainer
continues from the run's checkpoint) and refuses run folders that hold different settings. Runs
execute one after another in this process, or as Ray tasks with ``backend="ray"``, and
``shell_commands`` prints one self-contained command per run for any other scheduler.

Modules: ``plan`` parses a sweep file into planned runs, ``execute`` runs them here and records
``sweep.json``, ``ray_backend`` runs them as Ray tasks and ``commands`` writes shell commands.
"""

from privft.sweep.commands import shell_commands
from privft.sweep.execute import (
    build_frontiers,
    check_run_folders,
    prepare_datasets,
    run_one,
    run_state,
    run_sweep,
    write_plan,
)
from privft.sweep.plan import (
    DatasetSpec,
    EvalSettings,
    PlannedRun,
    Resources,
    RunOutcome,
    Sweep,
    SweepError,
    load_sweep,
    parse_sweep,
    run_name,
)
from privft.sweep.ray_backend import import_ray

__all__ = [
    "DatasetSpec",
    "EvalSettings",
    "PlannedRun",
    "Resources",
    "RunOutcome",
    "Sweep",
    "SweepError",
    "build_frontiers",
    "check_run_folders",
    "import_ray",
    "load_sweep",
    "parse_sweep",
    "prepare_datasets",
    "run_name",
    "run_one",
    "run_state",
    "run_sweep",
    "shell_commands",
    "write_plan",
]
