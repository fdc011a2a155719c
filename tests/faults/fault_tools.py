"""Helpers for the fault tests: real privft processes, SIGKILL, and checks of what they left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

# One thread in every process, so that a run split across processes computes what one process
# computes, and the 2-core test machine is not oversubscribed.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


@contextmanager
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def start_privft(*args) -> subprocess.Popen:
    """Start ``python -m privft ARGS`` with stderr piped and line-buffered as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "privft", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=SUBPROCESS_ENV,
    )


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout_s=300.0) -> None:
    """Poll ``ready`` every few milliseconds and SIGKILL the process once it returns True."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise AssertionError(
                f"the process ended (status {process.returncode}) before the kill point; "
                f"stderr: {process.stderr.read()[-2000:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no kill point within {timeout_s} s")
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stderr.close()


def latest_step(run_dir: Path) -> int | None:
    """Return the step that ``state/latest.json`` names, or None while there is none."""
    latest = Path(run_dir) / "state" / "latest.json"
    try:
        return json.loads(latest.read_text(encoding="utf-8"))["step"]
    except FileNotFoundError:
        return None


def assert_files_complete(run_dir: Path) -> None:
    """Check that every file a run wrote under its final name is whole and parses.

    Hidden ``.NAME.*.tmp`` files are a killed write's leftovers and are skipped. So is a
    ``step-*`` folder that ``latest.json`` does not name, because it may be mid-write or
    mid-removal and is never read.
    """
    run_dir = Path(run_dir)
    for path in run_dir.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    log = run_dir / "train_log.jsonl"
    if log.exists():
        text = log.read_text(encoding="utf-8")
        assert text.endswith("\n") or not text, "the log ends in half a line"
        for line in text.splitlines():
            json.loads(line)
    step = latest_step(run_dir)
    if step is not None:
        folder = run_dir / "state" / f"step-{step:06d}"
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        assert state["step"] == step
        load_file(folder / "trainable.safetensors")
        torch.load(folder / "optimizer.pt", weights_only=True)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    folder = Path(run_dir) / "checkpoint"
    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no safetensors weights in {folder}"
    weights: dict[str, torch.Tensor] = {}
    for path in files:
        weights.update(load_file(path))
    return weights


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def log_rows(run_dir: Path) -> list[dict]:
    """Rows of ``train_log.jsonl`` without the throughput, which depends on the machine."""
    text = (Path(run_dir) / "train_log.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    for row in rows:
        row.pop("tokens_per_s")
    return rows
