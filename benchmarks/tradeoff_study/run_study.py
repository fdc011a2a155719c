"""Run the trade-off study in priority order within a time budget, then collect the results.

Usage: python benchmarks/tradeoff_study/run_study.py [--budget-min 40] [--out runs/tradeoff_study]
       [--only PATTERN ...] [--no-collect]

The sweep file lists the whole subset grid. Runs start in the order of ``PRIORITY``: seed 0 of
the four recipes at epsilon 8 first, then more seeds, then other epsilons. No run starts after
the budget is spent, but a run that has started always finishes. Finished runs are skipped on a
rerun, so calling the script again continues the study. ``study_log.json`` records what ran and
for how long.

``--only`` restricts a call to runs whose names match a pattern, so that two calls on disjoint
patterns can share a machine's cores (each with ``OMP_NUM_THREADS=1``). Each call adds its own
session to ``study_log.json`` under a file lock.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from collect import main as collect  # noqa: E402

from privft.sweep import load_sweep, run_state, run_sweep  # noqa: E402

PRIORITY = [
    "*-full-*-s0",
    "*-lora-*-s0",
    "*-dp_sgd-eps8-*-s0",
    "*-dp_lora-eps8-*-s0",
    "*-full-*-s1",
    "*-lora-*-s1",
    "*-dp_sgd-eps8-*-s1",
    "*-dp_lora-eps8-*-s1",
    "*-dp_sgd-eps1-*-s0",
    "*-dp_lora-eps1-*-s0",
    "*-full-*-s2",
    "*-lora-*-s2",
    "*-dp_sgd-eps8-*-s2",
    "*-dp_lora-eps8-*-s2",
    "*-dp_sgd-eps4-*-s0",
    "*-dp_lora-eps4-*-s0",
    "*",
]


def ordered(runs):
    """Return the runs in PRIORITY order (each run once, at its first matching pattern)."""
    out = []
    for pattern in PRIORITY:
        out += [r for r in runs if fnmatch.fnmatch(r.name, pattern) and r not in out]
    return out


@contextmanager
def locked_log(path: Path):
    """Yield the study log's content under an exclusive lock, then write it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log = json.loads(path.read_text()) if path.exists() else {"sessions": []}
        yield log
        path.write_text(json.dumps(log, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=40.0, help="Minutes for new runs.")
    parser.add_argument("--out", type=Path, default=None, help="Sweep output folder.")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--only", nargs="+", help="Run only runs whose names match a pattern.")
    parser.add_argument("--no-collect", action="store_true", help="Skip collect.py at the end.")
    args = parser.parse_args()

    sweep = load_sweep(HERE / "sweep.yaml", out=args.out)
    log_path = Path(sweep.out) / "study_log.json"
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget_min": args.budget_min}
    session["only"] = args.only
    session["runs"] = []
    with locked_log(log_path) as log:
        log["sessions"].append(session)
        index = len(log["sessions"]) - 1
    runs = ordered(sweep.runs)
    if args.only:
        runs = [r for r in runs if any(fnmatch.fnmatch(r.name, p) for p in args.only)]
    started = time.perf_counter()
    for run in runs:
        if run_state(run) == "evaluated":
            continue
        if time.perf_counter() - started > args.budget_min * 60:
            print(f"budget of {args.budget_min:g} min spent; not started: {run.name}", flush=True)
            continue
        outcome = run_sweep(sweep, [run])[0]
        print(f"{outcome.status} {outcome.name} in {outcome.seconds:.0f} s", flush=True)
        session["runs"].append(
            {"name": run.name, "status": outcome.status, "seconds": round(outcome.seconds, 1)}
        )
        with locked_log(log_path) as log:
            log["sessions"][index] = session
    session["wall_s"] = round(time.perf_counter() - started, 1)
    with locked_log(log_path) as log:
        log["sessions"][index] = session
    if args.no_collect:
        return
    collect(Path(sweep.out), args.results)
    (args.results / "study_log.json").write_text(log_path.read_text())


if __name__ == "__main__":
    main()
