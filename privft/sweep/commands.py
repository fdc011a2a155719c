"""One self-contained shell command per sweep run, for schedulers other than privft's."""

from __future__ import annotations

import shlex
from pathlib import Path

from privft.sweep.plan import PlannedRun, Sweep


def shell_commands(sweep: Sweep, runs: list[PlannedRun] | None = None) -> list[str]:
    """Return one shell command per run: make its data if missing, train, then evaluate.

    Each command starts in the current directory (relative paths in the sweep resolve there),
    does nothing when the run already has a results.json, and reads the run's config from
    ``OUT/configs/`` (see ``write_plan``).
    """
    runs = sweep.runs if runs is None else runs
    cwd = shlex.quote(str(Path.cwd()))
    lines = []
    for run in runs:
        q = shlex.quote
        steps = []
        if run.dataset.synth is not None:
            synth, data = run.dataset.synth, q(run.dataset.path)
            steps.append(
                f"{{ test -f {data}/manifest.json || privft data synth --domain {synth['domain']} "
                f"--out {data} --n-train {synth['n_train']} --n-test {synth['n_test']} "
                f"--seed {synth['seed']}; }}"
            )
        config = q(str(Path(sweep.out) / "configs" / f"{run.name}.yaml"))
        steps.append(f"privft train --config {config} --no-progress")
        evaluate = f"privft eval {q(run.run_dir)} --exposure {sweep.eval.exposure}"
        evaluate += f" --exposure-samples {sweep.eval.exposure_samples}"
        if sweep.eval.max_records is not None:
            evaluate += f" --max-records {sweep.eval.max_records}"
        if sweep.eval.extraction_records is not None:
            evaluate += f" --extraction-records {sweep.eval.extraction_records}"
        if sweep.eval.min_k is not None:
            evaluate += f" --min-k {sweep.eval.min_k}"
        steps.append(evaluate + " --no-progress")
        work = " && ".join(steps)
        lines.append(f"cd {cwd} && {{ test -f {q(run.run_dir)}/results.json || {{ {work}; }}; }}")
    return lines
