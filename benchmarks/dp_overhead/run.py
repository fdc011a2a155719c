"""DP overhead: step time and peak memory of each DP mode against non-private training.

Each variant runs privft's own training step (``Trainer._train_step``) in a fresh subprocess,
so the child's peak resident memory is that variant's alone. Ratios compare a DP variant with
the non-private run of the same recipe (full or LoRA), model and batch, all measured in one
invocation of this script.

Usage:
    python benchmarks/dp_overhead/run.py --models builtin llama135m --steps 4 \\
        --out benchmarks/dp_overhead/results.json
    # only some variants, and where the time of each step goes:
    python benchmarks/dp_overhead/run.py --models builtin --variants full dp_sgd/hooks --profile

``--profile`` adds to each variant the median time of the step's phases (forward pass,
backward pass with opacus's per-sample hooks, optimizer step with clipping and noise) and the
aten operators that took the most time, from torch.profiler over the timed steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = [
    ("full", None),
    ("dp_sgd", "hooks"),
    ("dp_sgd", "functorch"),
    ("dp_sgd", "ghost"),
    ("lora", None),
    ("dp_lora", "hooks"),
    ("dp_lora", "functorch"),
    ("dp_lora", "ghost"),
]
BASELINE = {"dp_sgd": "full", "dp_lora": "lora"}


def build_llama135m(folder: Path) -> None:
    """Save a random-weight Llama-shaped model of about 135M parameters (SmolLM2-135M's shape)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from privft.models import load_tokenizer

    tokenizer = load_tokenizer("builtin")
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def child(args: argparse.Namespace) -> None:
    """Time ``args.steps`` training steps of one variant after one warm-up step."""
    import torch

    from privft.config import TrainConfig
    from privft.recipes import get_recipe
    from privft.recipes.resources import ResourceMonitor
    from privft.recipes.trainer import Trainer

    torch.set_num_threads(args.threads)
    dp = {"epsilon": None, "noise_multiplier": 1.0}
    if args.mode:
        dp["grad_sample_mode"] = args.mode
    config = TrainConfig(
        recipe=args.recipe,
        data=args.data,
        out=args.run,
        model=args.model,
        batch_size=args.batch,
        physical_batch_size=args.batch,
        max_length=args.seq,
        epochs=100,
        dp=dp,
    )
    recipe = get_recipe(args.recipe)(config)
    trainer = Trainer(config, make_trainable=recipe.make_trainable, show_progress=False)
    trainer._setup()
    trainer.monitor = ResourceMonitor(trainer.device)
    # Fixed full batches: the same records every step, so only the mode differs.
    trainer.sampler.indices = lambda step: list(range(args.batch))
    phases = time_phases(trainer) if args.profile else None
    trainer._train_step(0)
    if phases is not None:
        phases.clear()
    times = []
    profiler = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        profiler = profile(activities=[ProfilerActivity.CPU])
        profiler.__enter__()
    cpu_times = []
    for step in range(1, args.steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer._train_step(step)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"step_s": statistics.median(times), "steps": times, "peak_mb": peak_mb}
    # CPU time of this process: with one thread it counts the work done and not the time spent
    # waiting for a core, so it compares variants even on a machine that other jobs load.
    row["cpu_step_s"] = statistics.median(cpu_times)
    if profiler is not None:
        profiler.__exit__(None, None, None)
        row["phases_s"] = {k: sum(v) / args.steps for k, (v, _) in phases.items()}
        row["phases_cpu_s"] = {k: sum(c) / args.steps for k, (_, c) in phases.items()}
        row["top_ops"] = top_ops(profiler, args.steps)
    print(json.dumps(row))


def time_phases(trainer) -> dict[str, tuple[list[float], list[float]]]:
    """Wrap the forward pass, backward pass and optimizer step of ``trainer`` with timers.

    Each phase collects (wall-clock seconds, CPU seconds) per call.
    """
    phases: dict[str, tuple[list[float], list[float]]] = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                wall, cpu = phases.setdefault(name, ([], []))
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - cpu_start)

        return wrapper

    trainer._forward = timed("forward", trainer._forward)
    trainer.optimizer.step = timed("optimizer_step", trainer.optimizer.step)
    if trainer.private is not None:
        trainer.private.backward = timed("backward", trainer.private.backward)
    else:
        trainer.accelerator.backward = timed("backward", trainer.accelerator.backward)
    return phases


def top_ops(profiler, steps: int, count: int = 12) -> list[dict]:
    """Return the operators with the most self CPU time per step, in seconds."""
    averages = sorted(
        profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True
    )
    return [
        {
            "op": event.key,
            "self_s": event.self_cpu_time_total / 1e6 / steps,
            "calls": event.count // steps,
        }
        for event in averages[:count]
    ]


def run_variant(model: str, data: Path, recipe: str, mode: str | None, args) -> dict:
    with tempfile.TemporaryDirectory() as run:
        command = [
            sys.executable,
            __file__,
            "--child",
            "--model",
            model,
            "--data",
            str(data),
            "--recipe",
            recipe,
            "--run",
            run,
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--seq",
            str(args.seq),
            "--threads",
            str(args.threads),
        ]
        if mode:
            command += ["--mode", mode]
        if args.profile:
            command.append("--profile")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        return {"error": reason}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["builtin", "llama135m"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants", nargs="+", help="Variants to run, e.g. full dp_sgd/hooks (default: all)."
    )
    parser.add_argument("--profile", action="store_true", help="Time phases and top operators.")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--recipe")
    parser.add_argument("--mode")
    parser.add_argument("--run")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from privft.data.synth import synthesize

    work = Path(tempfile.mkdtemp(prefix="dp-overhead-"))
    data = work / "data"
    synthesize("customer_support", data, n_train=64, n_test=8, seed=0)
    results = {
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "threads": args.threads,
        },
        "batch": args.batch,
        "seq": args.seq,
        "steps": args.steps,
        "models": {},
    }
    for name in args.models:
        model = name
        if name == "llama135m":
            model = str(work / "llama135m")
            build_llama135m(Path(model))
        rows = results["models"][name] = {}
        for recipe, mode in VARIANTS:
            key = recipe if mode is None else f"{recipe}/{mode}"
            if args.variants and key not in args.variants:
                continue
            rows[key] = run_variant(model, data, recipe, mode, args)
            add_ratios(rows)
            print(name, key, rows[key], file=sys.stderr, flush=True)
            # Written after every variant, so a run stopped early keeps what it measured.
            args.out.write_text(json.dumps(results, indent=2) + "\n")


def add_ratios(rows: dict) -> None:
    for key, row in rows.items():
        base = rows.get(BASELINE.get(key.split("/")[0], ""), {})
        if "step_s" in row and "step_s" in base:
            row["time_ratio"] = row["step_s"] / base["step_s"]
            if "cpu_step_s" in row and "cpu_step_s" in base:
                row["cpu_time_ratio"] = row["cpu_step_s"] / base["cpu_step_s"]
            row["memory_ratio"] = row["peak_mb"] / base["peak_mb"]


if __name__ == "__main__":
    main()
