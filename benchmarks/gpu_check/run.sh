#!/usr/bin/env bash
# GPU check of the DP recipes in bf16 on a SmolLM2-135M-shaped model, in under 5 minutes:
# per-sample gradients against float32, then tokens per second and peak memory per recipe.
# Without CUDA, or with --dry-run, the same code runs on a tiny model on the CPU.
# Extra arguments pass through to check.py (--steps, --seq-len, --json FILE, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
    . .venv/bin/activate
fi
export HF_HUB_OFFLINE=1
exec timeout 300 python benchmarks/gpu_check/check.py "$@"
