#!/usr/bin/env bash
# Set up, then run the main job: synthetic data, four recipes, evaluation and the frontier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
privft demo --out "${1:-privft-demo}"
