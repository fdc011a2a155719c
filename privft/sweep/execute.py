"""Running a sweep: run folder states, local execution, ``sweep.json`` and frontiers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from privft.config import ConfigError, save_config
from privft.storage import atomic_write_json
from privft.sweep.plan import DatasetSpec, EvalSettings, PlannedRun, RunOutcome, Sweep, SweepError

logger = logging.getLogger(__name__)


# 1. State of run folders -------------------------------------------------------------------------
def run_state(run: PlannedRun) -> str:
    """Return ``evaluated``, ``trained``, ``started`` or ``new`` for a planned run's folder."""
    from privft.recipes.runinfo import read_run_info

    run_dir = Path(run.run_dir)
    if (run_dir / "results.json").exists():
        return "evaluated"
    info = read_run_info(run_dir) if run_dir.exists() else None
    if info is None:
        return "new"
    return "trained" if info.status == "completed" else "started"


def check_run_folders(runs: list[PlannedRun]) -> None:
    """Raise SweepError if an existing run folder was trained with other settings than planned."""
    from privft.config import read_run_config

    problems = []
    for run in runs:
        if not (Path(run.run_dir) / "config.yaml").exists():
            continue
        try:
            found = read_run_config(Path(run.run_dir)).to_dict()
        except (ConfigError, TypeError, yaml.YAMLError) as err:
            problems.append(f"{run.run_dir}: unreadable config.yaml ({err})")
            continue
        differences = _differences(found, run.config.to_dict())
        if differences:
            problems.append(f"{run.run_dir}: " + "; ".join(differences))
    if problems:
        raise SweepError(
            "run folders hold runs with other settings than the sweep plans (found vs planned):\n  "
            + "\n  ".join(problems)
            + "\nuse another --out, or delete those folders to train them again"
        )


def _differences(found: dict[str, Any], planned: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(found) | set(planned)):
        a, b = found.get(key), planned.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} vs {b!r}")
    return out


# 2. Running --------------------------------------------------------------------------------------
def write_plan(sweep: Sweep) -> Path:
    """Write each run's config under ``OUT/configs/`` (a ``privft train --config`` preset)."""
    folder = Path(sweep.out) / "configs"
    for run in sweep.runs:
        save_config(run.config, folder / f"{run.name}.yaml")
    return folder


def prepare_datasets(datasets: list[DatasetSpec]) -> None:
    """Make the synthetic datasets that are missing; check that given data folders exist."""
    from privft.data.synth import synthesize

    for dataset in datasets:
        folder = Path(dataset.path)
        if dataset.synth is None:
            if not (folder / "train.jsonl").exists():
                raise SweepError(
                    f"dataset {dataset.name!r}: {folder}/train.jsonl not found; point its 'path' "
                    "at a privft data folder (make one with `privft data synth`)"
                )
            continue
        if (folder / "manifest.json").exists():
            continue
        synth = dataset.synth
        logger.info("making %s data for dataset %s in %s", synth["domain"], dataset.name, folder)
        synthesize(
            synth["domain"],
            folder,
            n_train=synth["n_train"],
            n_test=synth["n_test"],
            seed=synth["seed"],
        )


def run_one(run: PlannedRun, settings: EvalSettings, *, show_progress: bool = False) -> RunOutcome:
    """Train (or resume) and evaluate one run; a run with a results.json is skipped."""
    from privft.evaluation import evaluate_run
    from privft.recipes import train

    run_dir = Path(run.run_dir)
    if (run_dir / "results.json").exists():
        return RunOutcome(run.name, run.run_dir, "skipped")
    options = {}
    if settings.extraction_records is not None:
        options["extraction_records"] = settings.extraction_records
    if settings.min_k is not None:
        options["min_k"] = settings.min_k
    started = time.perf_counter()
    try:
        train(run.config, show_progress=show_progress)
        evaluate_run(
            run_dir,
            max_records=settings.max_records,
            exposure_method=settings.exposure,
            exposure_samples=settings.exposure_samples,
            show_progress=show_progress,
            **options,
        )
    except Exception as err:  # noqa: BLE001 - one failed run must not stop the sweep
        logger.error("run %s failed: %s: %s", run.name, type(err).__name__, err)
        return RunOutcome(
            run.name,
            run.run_dir,
            "failed",
            time.perf_counter() - started,
            f"{type(err).__name__}: {err}",
        )
    return RunOutcome(run.name, run.run_dir, "completed", time.perf_counter() - started)


def run_sweep(
    sweep: Sweep,
    runs: list[PlannedRun] | None = None,
    *,
    backend: str = "local",
    ray_address: str | None = None,
    show_progress: bool = False,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Run the sweep's runs (all, or ``runs``) on a backend and record ``OUT/sweep.json``."""
    runs = sweep.runs if runs is None else runs
    if backend not in ("local", "ray"):
        raise SweepError(f"backend {backend!r} is unknown; valid: local, ray")
    if backend == "ray":
        from privft.sweep.ray_backend import import_ray, run_on_ray

        ray = import_ray()
    check_run_folders(runs)
    write_plan(sweep)
    prepare_datasets([d for d in sweep.datasets if any(r.dataset == d for r in runs)])
    outcomes: list[RunOutcome] = []

    def record(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        _write_status(sweep, outcomes)
        if on_outcome is not None:
            on_outcome(outcome)

    if backend == "local":
        for run in runs:
            record(run_one(run, sweep.eval, show_progress=show_progress))
    else:
        run_on_ray(ray, sweep, runs, ray_address, record)
    return outcomes


def _write_status(sweep: Sweep, outcomes: list[RunOutcome]) -> None:
    by_name = {o.name: o for o in outcomes}
    rows = []
    for run in sweep.runs:
        outcome = by_name.get(run.name)
        rows.append(
            {
                "name": run.name,
                "run_dir": run.run_dir,
                "grid": run.axes,
                "status": outcome.status if outcome else run_state(run),
                "seconds": outcome.seconds if outcome else None,
                "error": outcome.error if outcome else None,
            }
        )
    atomic_write_json(Path(sweep.out) / "sweep.json", {"name": sweep.name, "runs": rows})


def build_frontiers(sweep: Sweep, **options: Any) -> dict[str, Path]:
    """Draw one frontier per dataset from the runs that have results, under ``OUT/frontier/``."""
    from privft.frontier import build_frontier

    folders = {}
    for dataset in sweep.datasets:
        done = [
            Path(r.run_dir)
            for r in sweep.runs
            if r.dataset == dataset and (Path(r.run_dir) / "results.json").exists()
        ]
        if not done:
            continue
        folder = Path(sweep.out) / "frontier" / dataset.name
        title = f"{sweep.name}: {dataset.name}"
        build_frontier(done, folder, **{"title": title, **options})
        folders[dataset.name] = folder
    return folders
