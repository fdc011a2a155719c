"""Measure evaluation speed on the built-in model.

1. Scoring throughput: ``score_records`` (per-token NLL, top-1 hits and, for Min-K%++, the
   log-probability moments) against the raw forward pass of the same model on the same
   batches, as a ratio of times (1.0 = scoring costs nothing beyond the forward pass).
2. Exact canary exposure: candidates ranked per second by the prefix-tree enumeration, for
   secret spaces of 10^L digit strings.

Example::

    python benchmarks/eval_speed/run.py --out benchmarks/eval_speed/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from privft.data import load_dataset_dir
from privft.data.encoding import CausalLMCollator, encode_records, start_token_id
from privft.data.synth import synthesize
from privft.evaluation.exposure import digit_tokens, enumerate_log_perplexity
from privft.evaluation.scoring import score_records
from privft.models import load_model, load_tokenizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=256, help="records scored per pass")
    parser.add_argument("--batch-size", type=int, default=32, help="records per forward pass")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per record")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes of each kind")
    parser.add_argument(
        "--lengths", type=int, nargs="*", default=[4, 5, 6], help="secret lengths to enumerate"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    return parser.parse_args(argv)


def forward_pass(model, records, pad_token_id: int, batch_size: int) -> None:
    """Run the raw forward pass over the batches ``score_records`` forms (same order, padding)."""
    collate = CausalLMCollator(pad_token_id)
    order = sorted(range(len(records)), key=lambda i: len(records[i].input_ids))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = collate([records[i] for i in order[start : start + batch_size]])
            batch.pop("labels")
            model(**batch)


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def scoring_benchmark(model, tokenizer, records, args) -> dict:
    pad = tokenizer.pad_token_id
    tokens = sum(len(r.input_ids) for r in records)
    runs = {
        "forward": lambda: forward_pass(model, records, pad, args.batch_size),
        "score": lambda: score_records(
            model, records, pad_token_id=pad, batch_size=args.batch_size
        ),
        "score_nll_only": lambda: score_records(
            model, records, pad_token_id=pad, batch_size=args.batch_size, distribution=False
        ),
    }
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    # Interleaved, so that load from other processes hits every kind alike.
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "records": len(records),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "seconds_min": best,
        "seconds_median": median,
        "tokens_per_s_min_time": {name: tokens / value for name, value in best.items()},
        "ratio_score_to_forward_min": best["forward"] / best["score"],
        "ratio_score_to_forward_median": median["forward"] / median["score"],
        "ratio_nll_only_to_forward_min": best["forward"] / best["score_nll_only"],
    }


def exposure_benchmark(model, tokenizer, canary, lengths: list[int]) -> list[dict]:
    char_ids = digit_tokens(tokenizer, [canary])
    if char_ids is None:
        raise SystemExit("the tokenizer does not give each digit its own token after the prefix")
    prefix_ids = [
        start_token_id(tokenizer),
        *tokenizer.encode(canary.prefix, add_special_tokens=False),
    ]
    rows = []
    for length in lengths:
        started = time.perf_counter()
        enumerate_log_perplexity(model, prefix_ids, char_ids, length)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "secret_length": length,
                "candidates": 10**length,
                "seconds": seconds,
                "candidates_per_s": 10**length / seconds,
            }
        )
        print(f"exact exposure, 10^{length}: {seconds:.1f} s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    model = load_model("builtin")
    tokenizer = load_tokenizer("builtin")
    with tempfile.TemporaryDirectory() as folder:
        synthesize("customer_support", Path(folder), n_train=args.records, n_test=20, seed=0)
        dataset = load_dataset_dir(Path(folder))
    records = encode_records(dataset.train_plain, tokenizer, max_length=args.max_length)

    scoring = scoring_benchmark(model, tokenizer, records[: args.records], args)
    print(
        f"scoring / forward time ratio: {scoring['ratio_score_to_forward_min']:.3f}",
        file=sys.stderr,
    )
    exposure = exposure_benchmark(model, tokenizer, dataset.canaries[0], args.lengths)

    results = {
        "model": "builtin",
        "parameters": sum(p.numel() for p in model.parameters()),
        "scoring": scoring,
        "exact_exposure": exposure,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
    }
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
