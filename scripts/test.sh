#!/usr/bin/env bash
# Set up, then run the whole test suite on the CPU (extra pytest arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
python -m pytest -q "$@"
